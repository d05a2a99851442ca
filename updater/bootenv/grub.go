package bootenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// GRUB is the grub-mender-grubenv environment: Dir (its ENV_DIR, on the
// boot partition, e.g. /boot/efi/EFI/BOOT or /boot/grub-mender-grubenv)
// holds two copies, mender_grubenv1 and mender_grubenv2, each with three
// files:
//
//	env              the GRUB environment block with Mender's variables
//	lock             a GRUB environment block holding editing=0
//	lock.sha256sum   the SHA-256 of lock as it is then ("<hex>  lock")
//
// While a copy is edited its lock holds editing=1, so its checksum fails:
// that marks the copy as torn, for GRUB (which checks editing) and for the
// next read here (which checks the checksum), and the copy is restored
// from the other one. A write edits copy 2, then copy 1; a read takes
// copy 1. So the value read switches from old to new in one step, when
// copy 1's lock is set: before, copy 1 is old and whole; after, copy 1 is
// being edited and copy 2 is new and whole.
//
// This is what grub-mender-grubenv's fw_setenv and fw_printenv scripts do
// with grub-editenv; GRUB writes the blocks in place, at a fixed size, and
// so does GRUB here (no rename: GRUB finds the file's sectors by name, and
// the boot partition is often FAT, where a rename is no safer).
type GRUB struct {
	// Dir holds mender_grubenv1/ and mender_grubenv2/. Required.
	Dir string

	// beforeStep, when set (tests), runs before each step of a write or
	// a restore; an error stops there, as a power cut would.
	beforeStep func(step string) error
}

// The steps of an edit, for beforeStep.
const (
	stepLock  = "lock"  // set editing=1: the copy is torn from here
	stepEnv   = "env"   // write the environment block
	stepClose = "close" // set editing=0: the copy is whole again
)

func (g *GRUB) copyDir(n int) string {
	return filepath.Join(g.Dir, fmt.Sprintf("mender_grubenv%d", n))
}

func (g *GRUB) envFile(n int) string  { return filepath.Join(g.copyDir(n), "env") }
func (g *GRUB) lockFile(n int) string { return filepath.Join(g.copyDir(n), "lock") }
func (g *GRUB) sumFile(n int) string  { return filepath.Join(g.copyDir(n), "lock.sha256sum") }

func (g *GRUB) step(n int, name string) error {
	if g.beforeStep == nil {
		return nil
	}
	return g.beforeStep(fmt.Sprintf("%d:%s", n, name))
}

// Read returns the named variables of copy 1, after restoring a torn copy.
func (g *GRUB) Read(_ context.Context, names ...string) (Vars, error) {
	if err := g.restore(); err != nil {
		return nil, err
	}
	blk, err := g.readBlock(g.envFile(1))
	if err != nil {
		return nil, err
	}
	out := Vars{}
	if len(names) == 0 {
		maps.Copy(out, blk.vals)
		return out, nil
	}
	for _, n := range names {
		if v, ok := blk.vals[n]; ok {
			out[n] = v
		}
	}
	return out, nil
}

// Write sets vars in copy 2, then in copy 1.
func (g *GRUB) Write(_ context.Context, vars Vars) error {
	if err := checkVars(vars); err != nil {
		return err
	}
	if err := g.restore(); err != nil {
		return err
	}
	for _, n := range []int{2, 1} {
		blk, err := g.readBlock(g.envFile(n))
		if err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(vars)) {
			blk.set(k, vars[k])
		}
		b, err := blk.bytes()
		if err != nil {
			return fmt.Errorf("bootenv: %s: %w", g.envFile(n), err)
		}
		if err := g.edit(n, b); err != nil {
			return err
		}
	}
	return nil
}

// edit replaces copy n's environment block with env under its lock.
func (g *GRUB) edit(n int, env []byte) error {
	if err := g.step(n, stepLock); err != nil {
		return err
	}
	if err := g.setLock(n, "1"); err != nil {
		return err
	}
	if err := g.step(n, stepEnv); err != nil {
		return err
	}
	if err := writeInPlace(g.envFile(n), env); err != nil {
		return err
	}
	if err := g.step(n, stepClose); err != nil {
		return err
	}
	if err := g.setLock(n, "0"); err != nil {
		return err
	}
	if ok, err := g.lockValid(n); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("bootenv: %s does not match %s after the edit", g.lockFile(n), g.sumFile(n))
	}
	return nil
}

// restore repairs a torn copy from the other one: copy 2 first, as
// grub-mender-grubenv does. Both torn cannot happen from edits that go one
// copy at a time, and is reported.
func (g *GRUB) restore() error {
	ok2, err := g.lockValid(2)
	if err != nil {
		return err
	}
	if !ok2 {
		return g.restoreCopy(2, 1)
	}
	ok1, err := g.lockValid(1)
	if err != nil {
		return err
	}
	if !ok1 {
		return g.restoreCopy(1, 2)
	}
	return nil
}

// restoreCopy copies the environment block of copy from into copy to and
// closes to's lock.
func (g *GRUB) restoreCopy(to, from int) error {
	if ok, err := g.lockValid(from); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("bootenv: both copies of the GRUB environment in %s are torn (locks fail their checksums)", g.Dir)
	}
	env, err := os.ReadFile(g.envFile(from))
	if err != nil {
		return fmt.Errorf("bootenv: restore copy %d: %w", to, err)
	}
	if _, err := parseGRUBBlock(env); err != nil {
		return fmt.Errorf("bootenv: restore copy %d from %s: %w", to, g.envFile(from), err)
	}
	if err := g.step(to, stepEnv); err != nil {
		return err
	}
	if err := writeInPlace(g.envFile(to), env); err != nil {
		return err
	}
	if err := g.step(to, stepClose); err != nil {
		return err
	}
	if err := g.closeLock(to, from); err != nil {
		return err
	}
	return nil
}

// closeLock rewrites copy n's lock as editing=0 so that it matches its
// checksum again: its own block with editing=0 when that matches, else the
// other copy's lock (grub-mender-grubenv recreates it with grub-editenv).
func (g *GRUB) closeLock(n, other int) error {
	if err := g.setLock(n, "0"); err == nil {
		if ok, err := g.lockValid(n); err != nil || ok {
			return err
		}
	}
	b, err := os.ReadFile(g.lockFile(other))
	if err != nil {
		return fmt.Errorf("bootenv: restore %s: %w", g.lockFile(n), err)
	}
	if err := writeInPlace(g.lockFile(n), b); err != nil {
		return err
	}
	if ok, err := g.lockValid(n); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("bootenv: unable to restore %s: it does not match %s", g.lockFile(n), g.sumFile(n))
	}
	return nil
}

// setLock sets editing=v in copy n's lock block.
func (g *GRUB) setLock(n int, v string) error {
	blk, err := g.readBlock(g.lockFile(n))
	if err != nil {
		return err
	}
	blk.set("editing", v)
	b, err := blk.bytes()
	if err != nil {
		return fmt.Errorf("bootenv: %s: %w", g.lockFile(n), err)
	}
	return writeInPlace(g.lockFile(n), b)
}

// lockValid reports whether copy n's lock matches its checksum file.
func (g *GRUB) lockValid(n int) (bool, error) {
	sum, err := os.ReadFile(g.sumFile(n))
	if err != nil {
		return false, fmt.Errorf("bootenv: GRUB environment: %w", err)
	}
	fields := bytes.Fields(sum)
	want, err := hex.DecodeString(string(firstOr(fields)))
	if err != nil || len(want) != sha256.Size {
		return false, fmt.Errorf("bootenv: %s: not a sha256sum line", g.sumFile(n))
	}
	lock, err := os.ReadFile(g.lockFile(n))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("bootenv: GRUB environment: %w", err)
	}
	got := sha256.Sum256(lock)
	return bytes.Equal(got[:], want), nil
}

func firstOr(fields [][]byte) []byte {
	if len(fields) == 0 {
		return nil
	}
	return fields[0]
}

func (g *GRUB) readBlock(path string) (*grubBlock, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bootenv: GRUB environment: %w", err)
	}
	blk, err := parseGRUBBlock(b)
	if err != nil {
		return nil, fmt.Errorf("bootenv: %s: %w", path, err)
	}
	return blk, nil
}

// writeInPlace overwrites path's bytes from offset 0 and syncs them; a
// longer or shorter b is refused (GRUB never changes a block's size).
func writeInPlace(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("bootenv: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("bootenv: %w", err)
	}
	if fi.Size() != int64(len(b)) {
		return fmt.Errorf("bootenv: %s is %d bytes, the new block %d: GRUB blocks keep their size", path, fi.Size(), len(b))
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("bootenv: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("bootenv: sync %s: %w", path, err)
	}
	return f.Close()
}

// CreateGRUB lays out a new grub-mender-grubenv environment in dir holding
// vars, as grub-mender-grubenv's build does (make-env-and-lock-files): for
// provisioning an image, and for tests and the dev environment's simulated
// device. Existing files are replaced.
func CreateGRUB(dir string, vars Vars) error {
	env := newGRUBBlock()
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env.set(k, vars[k])
	}
	envBytes, err := env.bytes()
	if err != nil {
		return fmt.Errorf("bootenv: %w", err)
	}
	lock := newGRUBBlock()
	lock.set("editing", "0")
	lockBytes, err := lock.bytes()
	if err != nil {
		return err
	}
	sum := sha256.Sum256(lockBytes)
	g := &GRUB{Dir: dir}
	for _, n := range []int{1, 2} {
		if err := os.MkdirAll(g.copyDir(n), 0o755); err != nil {
			return fmt.Errorf("bootenv: %w", err)
		}
		files := map[string][]byte{
			g.envFile(n):  envBytes,
			g.lockFile(n): lockBytes,
			g.sumFile(n):  []byte(hex.EncodeToString(sum[:]) + "  lock\n"),
		}
		for p, b := range files {
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return fmt.Errorf("bootenv: %w", err)
			}
		}
	}
	return nil
}

var _ Env = (*GRUB)(nil)
