package artifact

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Provides is what a device stores about its installed software: a flat
// map holding artifact_name, artifact_group when set, and every type-info
// artifact_provides key of the last committed Artifact (for example
// rootfs-image.version). The device type is kept apart; it is not a
// provides key.
type Provides map[string]string

// Keys of Provides with a meaning of their own.
const (
	ProvidesName  = "artifact_name"
	ProvidesGroup = "artifact_group"
	dependsDevice = "device_type"
)

// CheckDepends reports whether an Artifact may be installed on a device of
// type deviceType that currently provides device: deviceType must be in
// header-info's device_type list, and for every other depends key (from
// header-info: artifact_name, artifact_group; from each payload's type-info
// and header-augment: any key) the device must provide that key with a value
// in the listed values. A key given by both header-info and a type-info is
// an error, as in the Mender client. The error wraps ErrDepends and names
// every unmet dependency.
func CheckDepends(deviceType string, device Provides, h *Header) error {
	var errs []error
	if !slices.Contains(h.Depends.DeviceTypes, deviceType) {
		errs = append(errs, fmt.Errorf("device type %q is not in the artifact's device_type %q", deviceType, h.Depends.DeviceTypes))
	}
	top := map[string][]string{}
	if len(h.Depends.ArtifactNames) > 0 {
		top[ProvidesName] = h.Depends.ArtifactNames
	}
	if len(h.Depends.ArtifactGroups) > 0 {
		top[ProvidesGroup] = h.Depends.ArtifactGroups
	}
	errs = append(errs, checkValues("header-info", top, device)...)
	for _, p := range h.Payloads {
		where := fmt.Sprintf("payload %d", p.Index)
		for _, k := range slices.Sorted(maps.Keys(p.Depends)) {
			if _, dup := top[k]; dup || k == dependsDevice {
				errs = append(errs, fmt.Errorf("%s: depends key %q is also set by header-info", where, k))
			}
		}
		errs = append(errs, checkValues(where, p.Depends, device)...)
		if p.Augment != nil {
			errs = append(errs, checkValues(where+" (augment)", p.Augment.Depends, device)...)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrDepends, errors.Join(errs...))
	}
	return nil
}

func checkValues(where string, depends map[string][]string, device Provides) []error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(depends)) {
		want := depends[k]
		if k == dependsDevice {
			continue // checked against the device type, not provides
		}
		got, ok := device[k]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: depends on %s in %q, the device does not provide %s", where, k, want, k))
		case !slices.Contains(want, got):
			errs = append(errs, fmt.Errorf("%s: depends on %s in %q, the device has %q", where, k, want, got))
		}
	}
	return errs
}

// NewProvides returns what the device provides once h is committed over
// old, following the Mender client:
//   - type-info provides of the old Artifact are kept only if every payload
//     of h has clears_artifact_provides and none of those globs matches the
//     key (a payload without clears_artifact_provides drops them all, the
//     legacy rule);
//   - h's type-info provides are then set over them;
//   - artifact_name becomes h.Name;
//   - artifact_group becomes h.Group when set; otherwise the old group is
//     kept unless it would be cleared as above.
//
// old is not modified.
func NewProvides(old Provides, h *Header) Provides {
	var clears []string
	clearAll := false
	for _, p := range h.Payloads {
		if p.ClearsProvides == nil {
			clearAll = true
		}
		clears = append(clears, p.ClearsProvides...)
	}
	cleared := func(key string) bool {
		return clearAll || slices.ContainsFunc(clears, func(g string) bool { return globMatch(g, key) })
	}
	out := Provides{}
	for k, v := range old {
		if k == ProvidesName || k == ProvidesGroup || cleared(k) {
			continue
		}
		out[k] = v
	}
	for _, p := range h.Payloads {
		maps.Copy(out, p.Provides)
	}
	out[ProvidesName] = h.Name
	switch {
	case h.Group != "":
		out[ProvidesGroup] = h.Group
	case old[ProvidesGroup] != "" && !cleared(ProvidesGroup):
		out[ProvidesGroup] = old[ProvidesGroup]
	}
	return out
}

// globMatch matches s against a clears_provides glob, where '*' stands for
// any run of characters (dots and slashes included) and everything else is
// literal.
func globMatch(glob, s string) bool {
	parts := strings.Split(glob, "*")
	if len(parts) == 1 {
		return glob == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}
