package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ActAsOwner gives this process the identity of dir's owner, for commands
// that change a state directory while no agent runs on it. When root works
// on a directory that the agent's own (non-root) user owns, every file it
// creates then belongs to that user, as if the agent had made it, and root
// follows nothing that user could have planted. The change is for the
// whole process and for good (real, effective and saved ids, and the
// supplementary groups): call it before anything else touches dir, and
// only in a command that does nothing else afterwards.
//
// It does nothing if the process is not root, if dir is missing (Open then
// creates it for this user) or if root owns it; Open then checks the owner.
func ActAsOwner(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: state directory: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	uid, gid := int(st.Uid), int(st.Gid)
	if uid == 0 {
		return nil
	}
	// Groups first: once the uid is not root, they can no longer change.
	// Go applies each of these to every thread of the process.
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("store: act as the owner of %s (uid %d): set groups: %w", dir, uid, err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("store: act as the owner of %s (uid %d): set gid %d: %w", dir, uid, gid, err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("store: act as the owner of %s: set uid %d: %w", dir, uid, err)
	}
	return nil
}
