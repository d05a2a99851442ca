package selfupdate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// stateName is the state file inside the payload's tree.
const stateName = "edgefort-agent.json"

// stateVersion is the version of the state file's layout.
const stateVersion = 1

// state is what the steps record in the payload's tree. Hashes are hex
// SHA-256; empty means not recorded yet.
type state struct {
	Version int    `json:"version"`
	Binary  string `json:"binary"`               // the path the update replaces
	New     string `json:"new_sha256,omitempty"` // the payload, set by Download
	Old     string `json:"old_sha256,omitempty"` // the binary before install, set by ArtifactInstall
}

// loadState reads the state file from tree. A missing file gives a zero
// state and no error.
func loadState(tree string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(tree, stateName))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read update state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read update state %s: %w", filepath.Join(tree, stateName), err)
	}
	if st.Version != stateVersion {
		return st, fmt.Errorf("read update state %s: version %d, want %d", filepath.Join(tree, stateName), st.Version, stateVersion)
	}
	return st, nil
}

// loadStateFor reads the state and checks it belongs to binary and holds
// the new file's hash.
func loadStateFor(tree, binary string) (state, error) {
	st, err := loadState(tree)
	if err != nil {
		return st, err
	}
	if st.New == "" {
		return st, errors.New("no downloaded binary recorded in the update state")
	}
	if st.Binary != binary {
		return st, fmt.Errorf("the update was downloaded for %s, but the binary is now %s", st.Binary, binary)
	}
	return st, nil
}

// saveState writes st to tree atomically and durably.
func saveState(tree string, st state) error {
	st.Version = stateVersion
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(tree, stateName), append(b, '\n')); err != nil {
		return fmt.Errorf("write update state: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file: write,
// fsync, rename, fsync the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory, making renames and removals in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// hashFile returns the SHA-256 of the file at path.
func hashFile(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("hash %s: %w", path, err)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// hashHex returns the hex SHA-256 of the file at path.
func hashHex(path string) (string, error) {
	sum, err := hashFile(path)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum[:]), nil
}

// short shortens a hex hash for logs and messages.
func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// parseHash turns a recorded hex hash back into bytes.
func parseHash(h string) ([32]byte, error) {
	var sum [32]byte
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != len(sum) {
		return sum, fmt.Errorf("invalid recorded sha256 %q", h)
	}
	copy(sum[:], b)
	return sum, nil
}

// removeIfExists removes path; a missing file is not an error.
func removeIfExists(path string) (removed bool, err error) {
	err = os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// jsonLine marshals v followed by a newline.
func jsonLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(b, '\n'), err
}
