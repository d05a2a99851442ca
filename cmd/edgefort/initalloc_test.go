package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// maxInitBytes bounds what one of edgefort's packages may allocate while
// initializing. Every start pays it, and every byte still referenced after
// init (a compiled regexp, a table) stays in the idle agent's heap: build
// such things on first use.
const maxInitBytes = 16 << 10

// TestInitAllocations runs this test binary, which links every package of
// the product, with GODEBUG=inittrace=1 and checks each edgefort package's
// init against maxInitBytes; devcloud's, which the tests link and the
// product does not (deps_test.go), are left out.
func TestInitAllocations(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -test.run=^$: %v\n%s", os.Args[0], err, out)
	}
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// init PKG @T ms, T ms clock, N bytes, N allocs
		f := strings.Fields(sc.Text())
		if len(f) < 11 || f[0] != "init" || !strings.HasPrefix(f[1], "github.com/edgefort/edgefort/") || strings.HasPrefix(f[1], "github.com/edgefort/edgefort/devcloud") || f[8] != "bytes," {
			continue
		}
		seen++
		n, err := strconv.Atoi(f[7])
		if err != nil {
			t.Fatalf("inittrace line %q: %v", sc.Text(), err)
		}
		if n > maxInitBytes {
			t.Errorf("init of %s allocates %d bytes, more than %d: build what it builds on first use", f[1], n, maxInitBytes)
		}
	}
	if seen == 0 {
		t.Fatalf("no inittrace line for an edgefort package in:\n%s", out)
	}
}
