package scripts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/updater/artifact"
)

// Store replaces ArtifactDir's content with the Artifact's scripts (mode
// 0755) and a version file "3", synced to disk. It writes a sibling
// directory (ArtifactDir + ".new") and swaps it in with one atomic
// rename, so ArtifactDir holds either the old scripts or all the new ones.
// A name that does not match State_Action_NN[_text] is refused.
func (r *Runner) Store(scripts []artifact.Script) error {
	if err := r.store(scripts); err != nil {
		return fmt.Errorf("store state scripts: %w", err)
	}
	return nil
}

func (r *Runner) store(scripts []artifact.Script) error {
	dir := r.ArtifactDir
	if dir == "" {
		return errors.New("no Artifact scripts directory configured")
	}
	seen := map[string]bool{}
	for _, s := range scripts {
		if !namePattern.MatchString(s.Name) {
			return fmt.Errorf("%q: not a state script name (State_Enter|Leave|Error_NN[_text])", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("%q: twice in the Artifact", s.Name)
		}
		seen[s.Name] = true
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp := dir + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	err := writeScripts(tmp, scripts)
	if err == nil {
		err = swapDir(tmp, dir)
	}
	if err == nil {
		err = atomicfile.SyncDir(parent)
	}
	if rerr := os.RemoveAll(tmp); err == nil {
		err = rerr
	}
	return err
}

// writeScripts writes the scripts and the version file into dir and syncs
// them.
func writeScripts(dir string, scripts []artifact.Script) error {
	for _, s := range scripts {
		if err := writeFileSync(filepath.Join(dir, s.Name), s.Data, 0o755); err != nil {
			return err
		}
	}
	if err := writeFileSync(filepath.Join(dir, versionFile), []byte("3"), 0o644); err != nil {
		return err
	}
	return atomicfile.SyncDir(dir)
}

// swapDir moves the directory src to dst. When dst exists the two are
// exchanged atomically (renameat2 RENAME_EXCHANGE) and src then holds the
// old content; where the file system cannot exchange, dst is moved aside
// first.
func swapDir(src, dst string) error {
	if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
		return os.Rename(src, dst)
	}
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if err == nil || !(errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTSUP)) {
		return err
	}
	old := dst + ".old"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := os.Rename(dst, old); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// Clear removes the stored Artifact scripts.
func (r *Runner) Clear() error {
	if r.ArtifactDir == "" {
		return nil
	}
	for _, d := range []string{r.ArtifactDir, r.ArtifactDir + ".new", r.ArtifactDir + ".old"} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("clear state scripts: %w", err)
		}
	}
	if err := atomicfile.SyncDir(filepath.Dir(r.ArtifactDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clear state scripts: %w", err)
	}
	return nil
}

// writeFileSync creates path with data and syncs it.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm) // not narrowed by the umask
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
