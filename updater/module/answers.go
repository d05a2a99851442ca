package module

import "fmt"

// Reboot is a module's answer to NeedsArtifactReboot.
type Reboot int

const (
	// RebootNo: the payload needs no reboot.
	RebootNo Reboot = iota
	// RebootYes: the module reboots what it updated itself, in its
	// ArtifactReboot state.
	RebootYes
	// RebootAutomatic: the agent reboots the device once, after every
	// module answering Yes has run ArtifactReboot.
	RebootAutomatic
)

func (r Reboot) String() string {
	switch r {
	case RebootNo:
		return "No"
	case RebootYes:
		return "Yes"
	case RebootAutomatic:
		return "Automatic"
	}
	return fmt.Sprintf("Reboot(%d)", int(r))
}

// ParseSupportsRollback reads the answer to SupportsRollback: "Yes" or
// "No"; empty means No.
func ParseSupportsRollback(s string) (bool, error) {
	switch s {
	case "Yes":
		return true, nil
	case "No", "":
		return false, nil
	}
	return false, fmt.Errorf("%s: invalid answer %q, want Yes or No", QuerySupportsRollback, s)
}

// ParseNeedsReboot reads the answer to NeedsArtifactReboot: "No", "Yes" or
// "Automatic"; empty means No.
func ParseNeedsReboot(s string) (Reboot, error) {
	switch s {
	case "No", "":
		return RebootNo, nil
	case "Yes":
		return RebootYes, nil
	case "Automatic":
		return RebootAutomatic, nil
	}
	return RebootNo, fmt.Errorf("%s: invalid answer %q, want No, Yes or Automatic", QueryNeedsArtifactReboot, s)
}
