package main

import (
	"strings"
	"testing"
)

// TestDevPointsToEdgefortDev: `edgefort dev`, the old first command, says
// where the dev environment went instead of failing as unknown.
func TestDevPointsToEdgefortDev(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"dev"}, "the dev environment is the edgefort-dev binary: go run ./cmd/edgefort-dev (here: go run ./cmd/edgefort-dev)"},
		{[]string{"dev", "deploy", "x.txt"}, "(here: go run ./cmd/edgefort-dev deploy x.txt)"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := edgefort(t, tt.args...)
			if code != 2 || out != "" || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, tt.want)
			}
		})
	}
	code, out, _ := edgefort(t, "--help")
	if code != 0 || !strings.Contains(out, "go run ./cmd/edgefort-dev") {
		t.Errorf("edgefort --help does not name the dev binary: exit %d\n%s", code, out)
	}
}
