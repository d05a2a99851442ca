package bootenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/peertest"
)

// newUBoot makes a U-Boot environment in files: fw_env.config points at
// one environment file (copies == 1) or two (a redundant environment),
// 16 KiB each, initialised by the real fw_setenv from an empty default.
func newUBoot(t *testing.T, copies int) *UBoot {
	t.Helper()
	setenv := peertest.Require(t, "fw_setenv")
	peertest.Require(t, "fw_printenv")
	dir := t.TempDir()
	var cfg strings.Builder
	for i := range copies {
		env := filepath.Join(dir, fmt.Sprintf("uboot-env%d", i+1))
		if err := os.WriteFile(env, make([]byte, 16<<10), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&cfg, "%s 0x0000 0x4000\n", env)
	}
	u := &UBoot{Config: filepath.Join(dir, "fw_env.config")}
	def := filepath.Join(dir, "default-env")
	for p, b := range map[string]string{u.Config: cfg.String(), def: ""} {
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(setenv, "-c", u.Config, "-f", def, VarBootPart, "2").CombinedOutput()
	if err != nil {
		t.Fatalf("fw_setenv (initial): %v: %s", err, out)
	}
	return u
}

func printenv(t *testing.T, u *UBoot, names ...string) Vars {
	t.Helper()
	out, err := exec.Command("fw_printenv", append([]string{"-c", u.Config}, names...)...).Output()
	if err != nil {
		t.Fatalf("fw_printenv: %v", err)
	}
	vars := Vars{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			vars[k] = v
		}
	}
	return vars
}

// TestUBootWithRealTools: written here, read by fw_printenv; written by
// fw_setenv, read here; for a single and a redundant environment.
func TestUBootWithRealTools(t *testing.T) {
	for _, copies := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d copies", copies), func(t *testing.T) {
			u := newUBoot(t, copies)
			ctx := context.Background()
			set := Vars{VarUpgradeAvailable: "1", VarBootPart: "3", VarBootPartHex: "3", VarBootCount: "0", "bootargs": "console=ttyS0 rw"}
			if err := u.Write(ctx, set); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(set, printenv(t, u)); diff != "" {
				t.Errorf("fw_printenv after Write (-want +got):\n%s", diff)
			}
			out, err := exec.Command("fw_setenv", "-c", u.Config, VarUpgradeAvailable, "0").CombinedOutput()
			if err != nil {
				t.Fatalf("fw_setenv: %v: %s", err, out)
			}
			got, err := u.Read(ctx, VarUpgradeAvailable, VarBootPart)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(Vars{VarUpgradeAvailable: "0", VarBootPart: "3"}, got); diff != "" {
				t.Errorf("Read after fw_setenv (-want +got):\n%s", diff)
			}
			all, err := u.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			set[VarUpgradeAvailable] = "0"
			if diff := cmp.Diff(set, all); diff != "" {
				t.Errorf("Read of all (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUBootErrors(t *testing.T) {
	u := newUBoot(t, 1)
	ctx := context.Background()
	if err := u.Write(ctx, Vars{"a": "x\ny"}); err == nil || !strings.Contains(err.Error(), "newline") {
		t.Errorf("Write of a newline = %v, want refused", err)
	}
	bad := &UBoot{Config: u.Config, Printenv: "/nonexistent/fw_printenv"}
	if _, err := bad.Read(ctx); err == nil || !strings.Contains(err.Error(), "/nonexistent/fw_printenv") {
		t.Errorf("Read with a missing tool = %v, want an error naming it", err)
	}
	// A tool whose output is not name=value.
	fake := filepath.Join(t.TempDir(), "fw_printenv")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'Cannot read environment'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := (&UBoot{Printenv: fake}).Read(ctx); err == nil || !strings.Contains(err.Error(), "not name=value") {
		t.Errorf("Read of garbage = %v, want refused", err)
	}
}

// TestUBootSaveCanary: an environment that asks for Mender's save canary
// is refused until U-Boot (here: fw_setenv) has set it.
func TestUBootSaveCanary(t *testing.T) {
	u := newUBoot(t, 1)
	ctx := context.Background()
	if out, err := exec.Command("fw_setenv", "-c", u.Config, varCheckCanary, "1").CombinedOutput(); err != nil {
		t.Fatalf("fw_setenv: %v: %s", err, out)
	}
	if _, err := u.Read(ctx, VarBootPart); err == nil || !strings.Contains(err.Error(), "fw_env.config") {
		t.Errorf("Read without the canary = %v, want refused", err)
	}
	if err := u.Write(ctx, Vars{VarUpgradeAvailable: "1"}); err == nil || !strings.Contains(err.Error(), varCanary) {
		t.Errorf("Write without the canary = %v, want refused", err)
	}
	if got := printenv(t, u, VarUpgradeAvailable); got[VarUpgradeAvailable] != "" {
		t.Errorf("the refused write changed the environment: %v", got)
	}
	if out, err := exec.Command("fw_setenv", "-c", u.Config, varCanary, "1").CombinedOutput(); err != nil {
		t.Fatalf("fw_setenv: %v: %s", err, out)
	}
	if err := u.Write(ctx, Vars{VarUpgradeAvailable: "1"}); err != nil {
		t.Fatal(err)
	}
	if got, err := u.Read(ctx, VarUpgradeAvailable); err != nil || got[VarUpgradeAvailable] != "1" {
		t.Errorf("Read with the canary = %v, %v", got, err)
	}
}

// TestUBootTornWrite: with a redundant environment (two copies in
// fw_env.config) a write goes to the older copy; tearing it, as a power
// cut during that write would, leaves the other copy, with the values
// before the write, for both libubootenv and Read.
func TestUBootTornWrite(t *testing.T) {
	u := newUBoot(t, 2)
	ctx := context.Background()
	before := Vars{VarUpgradeAvailable: "0", VarBootPart: "2"}
	after := Vars{VarUpgradeAvailable: "1", VarBootPart: "3"}
	for _, v := range []Vars{before, after} {
		if err := u.Write(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	// The copy the last write went to holds mender_boot_part=3.
	cfg, err := os.ReadFile(u.Config)
	if err != nil {
		t.Fatal(err)
	}
	torn := ""
	for _, line := range strings.Split(strings.TrimSpace(string(cfg)), "\n") {
		path := strings.Fields(line)[0]
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), VarBootPart+"=3") {
			torn = path
		}
	}
	if torn == "" {
		t.Fatal("no copy holds the last write")
	}
	f, err := os.OpenFile(torn, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The first half of the copy written, the rest never reached.
	if _, err := f.WriteAt(make([]byte, 8<<10), 8<<10); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("\x00\x00"), 10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := u.Read(ctx, VarUpgradeAvailable, VarBootPart)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, got); diff != "" {
		t.Errorf("Read after the torn write (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, printenv(t, u, VarUpgradeAvailable, VarBootPart)); diff != "" {
		t.Errorf("fw_printenv after the torn write (-want +got):\n%s", diff)
	}
}
