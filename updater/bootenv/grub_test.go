package bootenv

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/peertest"
)

// menderInitial is the environment grub-mender-grubenv's build writes.
var menderInitial = Vars{VarBootCount: "0", VarBootPart: "2", VarUpgradeAvailable: "0"}

// editenvList returns what grub-editenv lists for the block at path.
func editenvList(t *testing.T, path string) Vars {
	t.Helper()
	tool := peertest.Require(t, "grub-editenv")
	out, err := exec.Command(tool, path, "list").CombinedOutput()
	if err != nil {
		t.Fatalf("grub-editenv %s list: %v: %s", path, err, out)
	}
	vars := Vars{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			vars[k] = v
		}
	}
	return vars
}

func editenv(t *testing.T, args ...string) {
	t.Helper()
	tool := peertest.Require(t, "grub-editenv")
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("grub-editenv %q: %v: %s", args, err, out)
	}
}

// sha256sumCheck runs sha256sum -c on copy n's lock, as
// grub-mender-grubenv's scripts do.
func sha256sumCheck(t *testing.T, g *GRUB, n int) bool {
	t.Helper()
	tool := peertest.Require(t, "sha256sum")
	cmd := exec.Command(tool, "-c", "lock.sha256sum")
	cmd.Dir = g.copyDir(n)
	return cmd.Run() == nil
}

// TestGRUBWrittenHereReadByGrubEditenv writes Mender's variables and reads
// both copies back with the real grub-editenv; the locks still pass
// sha256sum -c, so GRUB and grub-mender-grubenv see two whole copies.
func TestGRUBWrittenHereReadByGrubEditenv(t *testing.T) {
	g := &GRUB{Dir: t.TempDir()}
	if err := CreateGRUB(g.Dir, menderInitial); err != nil {
		t.Fatal(err)
	}
	set := Vars{VarUpgradeAvailable: "1", VarBootPart: "3", VarBootPartHex: "3", VarBootCount: "0"}
	if err := g.Write(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	want := Vars{VarUpgradeAvailable: "1", VarBootPart: "3", VarBootPartHex: "3", VarBootCount: "0"}
	for _, n := range []int{1, 2} {
		if diff := cmp.Diff(want, editenvList(t, g.envFile(n))); diff != "" {
			t.Errorf("grub-editenv lists copy %d (-want +got):\n%s", n, diff)
		}
		if diff := cmp.Diff(Vars{"editing": "0"}, editenvList(t, g.lockFile(n))); diff != "" {
			t.Errorf("grub-editenv lists lock %d (-want +got):\n%s", n, diff)
		}
		if !sha256sumCheck(t, g, n) {
			t.Errorf("sha256sum -c fails for copy %d's lock after the write", n)
		}
	}
}

// TestGRUBWrittenByGrubEditenvReadHere lays the environment out with the
// real grub-editenv, as grub-mender-grubenv's build and fw_setenv do, and
// reads it; a write here then leaves the locks byte-identical.
func TestGRUBWrittenByGrubEditenvReadHere(t *testing.T) {
	g := &GRUB{Dir: t.TempDir()}
	for _, n := range []int{1, 2} {
		if err := os.MkdirAll(g.copyDir(n), 0o755); err != nil {
			t.Fatal(err)
		}
		editenv(t, g.envFile(n), "create")
		editenv(t, g.envFile(n), "set", "bootcount=1", "mender_boot_part=3", "upgrade_available=1", `odd=a\b c`)
		editenv(t, g.lockFile(n), "create")
		editenv(t, g.lockFile(n), "set", "editing=0")
		cmd := exec.Command(peertest.Require(t, "sha256sum"), "lock")
		cmd.Dir = g.copyDir(n)
		sum, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(g.sumFile(n), sum, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lockBefore, err := os.ReadFile(g.lockFile(1))
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := Vars{VarBootCount: "1", VarBootPart: "3", VarUpgradeAvailable: "1", "odd": `a\b c`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
	if err := g.Write(context.Background(), Vars{VarUpgradeAvailable: "0"}); err != nil {
		t.Fatal(err)
	}
	want[VarUpgradeAvailable] = "0"
	for _, n := range []int{1, 2} {
		if diff := cmp.Diff(want, editenvList(t, g.envFile(n))); diff != "" {
			t.Errorf("copy %d after the write (-want +got):\n%s", n, diff)
		}
	}
	lockAfter, err := os.ReadFile(g.lockFile(1))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lockBefore, lockAfter) {
		t.Errorf("the lock changed:\nbefore %q\nafter  %q", lockBefore, lockAfter)
	}
}

var errCrash = errors.New("simulated power cut")

// TestGRUBTornWrite cuts a write before each of its steps (and tears the
// environment block half-written) and checks that the next read finds one
// whole copy, old or new as grub-mender-grubenv's order decides, repairs
// the other, and that GRUB's tool then lists the same in both.
func TestGRUBTornWrite(t *testing.T) {
	old := Vars{VarBootCount: "0", VarBootPart: "2", VarUpgradeAvailable: "0"}
	set := Vars{VarBootCount: "0", VarBootPart: "3", VarBootPartHex: "3", VarUpgradeAvailable: "1"}
	tests := []struct {
		cut  string // the step cut off
		torn bool   // the env block is half-written at the cut
		want Vars
		// copy2 is what copy 2 holds after the read, when it differs from
		// want: cut between the copies, both are whole, 2 new and 1 old.
		copy2 Vars
	}{
		{cut: "2:lock", want: old},
		{cut: "2:env", want: old},
		{cut: "2:env", torn: true, want: old},
		{cut: "2:close", want: old},
		{cut: "1:lock", want: old, copy2: set},
		{cut: "1:env", want: set},
		{cut: "1:env", torn: true, want: set},
		{cut: "1:close", want: set},
	}
	for _, tt := range tests {
		name := tt.cut
		if tt.torn {
			name += " torn"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := CreateGRUB(dir, old); err != nil {
				t.Fatal(err)
			}
			g := &GRUB{Dir: dir, beforeStep: func(step string) error {
				if step != tt.cut {
					return nil
				}
				if tt.torn {
					n := int(step[0] - '0')
					half := append(bytes.Repeat([]byte{0}, 512), []byte("bootcount=9\n")...)
					f, err := os.OpenFile((&GRUB{Dir: dir}).envFile(n), os.O_WRONLY, 0)
					if err != nil {
						return err
					}
					defer f.Close()
					if _, err := f.WriteAt(half, 0); err != nil {
						return err
					}
				}
				return errCrash
			}}
			if err := g.Write(context.Background(), set); !errors.Is(err, errCrash) {
				t.Fatalf("Write = %v, want the simulated cut", err)
			}
			after := &GRUB{Dir: dir}
			got, err := after.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("read after the cut (-want +got):\n%s", diff)
			}
			for _, n := range []int{1, 2} {
				if !sha256sumCheck(t, after, n) {
					t.Errorf("copy %d's lock still fails sha256sum -c after the read", n)
				}
				want := tt.want
				if n == 2 && tt.copy2 != nil {
					want = tt.copy2
				}
				if diff := cmp.Diff(want, editenvList(t, after.envFile(n))); diff != "" {
					t.Errorf("grub-editenv lists copy %d (-want +got):\n%s", n, diff)
				}
			}
			// The next write completes as usual.
			if err := after.Write(context.Background(), set); err != nil {
				t.Fatal(err)
			}
			if got, _ := after.Read(context.Background()); !cmp.Equal(got, set) {
				t.Errorf("after a full write: %v, want %v", got, set)
			}
		})
	}
}

func TestGRUBRefuses(t *testing.T) {
	dir := t.TempDir()
	if err := CreateGRUB(dir, menderInitial); err != nil {
		t.Fatal(err)
	}
	g := &GRUB{Dir: dir}
	tests := []struct {
		name string
		vars Vars
		want string
	}{
		{"nothing", Vars{}, "nothing to write"},
		{"newline in value", Vars{"a": "x\ny"}, `value "x\ny" holds a newline`},
		{"equals in name", Vars{"a=b": "1"}, `variable name "a=b"`},
		{"too big for the block", Vars{"big": strings.Repeat("x", 2000)}, "the environment block holds 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := g.Write(context.Background(), tt.vars)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write = %v, want an error with %q", err, tt.want)
			}
			got, err := g.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(menderInitial, got); diff != "" {
				t.Errorf("the refused write changed the environment (-want +got):\n%s", diff)
			}
		})
	}
	// Both copies torn: nothing to restore from.
	for _, n := range []int{1, 2} {
		if err := g.setLock(n, "1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.Read(context.Background()); err == nil || !strings.Contains(err.Error(), "both copies") {
		t.Errorf("Read with both locks torn = %v, want an error naming both copies", err)
	}
	if _, err := (&GRUB{Dir: filepath.Join(dir, "none")}).Read(context.Background()); err == nil {
		t.Error("Read of a missing environment succeeded")
	}
}

func FuzzParseGRUBBlock(f *testing.F) {
	blk := newGRUBBlock()
	blk.set("a", `x\y`)
	b, _ := blk.bytes()
	f.Add(b)
	f.Add([]byte(grubSignature + "a=1\nb=\\\n\n###"))
	f.Add([]byte(grubSignature + "=x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		blk, err := parseGRUBBlock(b)
		if err != nil {
			return
		}
		out, err := blk.bytes()
		if err != nil {
			return // a value re-escaped can outgrow the block
		}
		again, err := parseGRUBBlock(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if !cmp.Equal(blk.vals, again.vals) {
			t.Fatalf("round trip changed %v to %v", blk.vals, again.vals)
		}
	})
}
