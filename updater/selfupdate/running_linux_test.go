package selfupdate

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckRunningExecutable(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	content, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	dir := t.TempDir()
	cp := filepath.Join(dir, "copy")
	if err := os.WriteFile(cp, content, 0o755); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, newAgent, 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		binary string
		want   [32]byte
		ok     bool
	}{
		{"the running file", exe, sum, true},
		{"a copy of it", cp, sum, true},
		{"another file", other, sha256.Sum256(newAgent), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkRunningExecutable(tt.binary, tt.want)
			if (err == nil) != tt.ok {
				t.Errorf("checkRunningExecutable(%s) = %v, want ok=%v", tt.binary, err, tt.ok)
			}
		})
	}
}
