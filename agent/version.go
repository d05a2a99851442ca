package agent

import "runtime/debug"

// version, commit and date are set at link time (scripts/release.sh):
//
//	-ldflags "-X github.com/edgefort/edgefort/agent.version=1.2.3 -X github.com/edgefort/edgefort/agent.commit=abc123 -X github.com/edgefort/edgefort/agent.date=2026-01-02T03:04:05Z"
//
// Without them the module's build info fills in what it can. date is the
// commit's time, not the build's, so that two builds of a commit are
// byte-identical.
var (
	version = ""
	commit  = ""
	date    = ""
)

// Version is the agent's version: the link-time value, else the module
// version, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Commit is the VCS revision the binary was built from, with "+dirty" if
// the tree had changes, or "unknown".
func Commit() string {
	if commit != "" {
		return commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "unknown"
	}
	return rev + dirty
}

// Date is the time of the commit the binary was built from (RFC 3339,
// UTC), or "unknown" in a build that did not set it.
func Date() string {
	if date != "" {
		return date
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// Build is this binary's BuildInfo.
func Build() BuildInfo { return BuildInfo{Version: Version(), Commit: Commit()} }
