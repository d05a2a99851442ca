package deploy_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/updater/bootenv"
	"github.com/edgefort/edgefort/updater/deploy"
)

// TestRootfsStateAcrossAgentVersions: the state directory lives on the
// data partition both root filesystems share, so the agent of one system
// reads what the other wrote. A record of this layout (testdata: a
// rootfs-image update at ArtifactReboot, and the installer's file in the
// payload tree, as this release writes them) must resume to the commit;
// so must the same record carrying a field a later release may add, which
// an agent rolled back to must ignore, not refuse.
func TestRootfsStateAcrossAgentVersions(t *testing.T) {
	record, err := os.ReadFile(filepath.Join("testdata", "rootfs-reboot-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := os.ReadFile(filepath.Join("testdata", "rootfs-image-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"this layout":                string(record),
		"with a later field":         strings.Replace(string(record), `"step":`, `"a_later_field":{"x":[1,2]},"step":`, 1),
		"with a later payload field": strings.Replace(string(record), `"reboot":2`, `"reboot":2,"a_later_payload_field":"y"`, 1),
	}
	for name, rec := range tests {
		t.Run(name, func(t *testing.T) {
			a := newABDevice(t)
			img := newImage()
			part := make([]byte, abPartSize)
			copy(part, img)
			if err := os.WriteFile(a.dev.PartB, part, 0o644); err != nil {
				t.Fatal(err)
			}
			err := a.dev.Env.Write(context.Background(), bootenv.Vars{
				bootenv.VarUpgradeAvailable: "1", bootenv.VarBootPart: "3", bootenv.VarBootPartHex: "3", bootenv.VarBootCount: "0",
			})
			if err != nil {
				t.Fatal(err)
			}
			treeDir := filepath.Join(a.work, "payloads", "0000", "tree")
			if err := os.MkdirAll(treeDir, 0o700); err != nil {
				t.Fatal(err)
			}
			st := strings.ReplaceAll(string(tree), "@DEV@", a.dev.Dir)
			if err := os.WriteFile(filepath.Join(treeDir, "rootfs-image.json"), []byte(st), 0o600); err != nil {
				t.Fatal(err)
			}
			raw := json.RawMessage(strings.ReplaceAll(rec, "@WORK@", a.work))
			if err := a.db.Bucket("updates").Put("inflight", raw); err != nil {
				t.Fatal(err)
			}
			if p := a.boot(); p != a.dev.PartB {
				t.Fatalf("booted %s", p)
			}
			res, down := a.resume()
			if down || res.Outcome != deploy.OutcomeSuccess {
				t.Fatalf("resume: %+v (rebooted %v), want success", res, down)
			}
			if dev := a.device(); dev.ArtifactName != "rootfs-v2" || dev.Provides["rootfs-image.version"] != "rootfs-v2" {
				t.Errorf("device after the commit: %+v", dev)
			}
		})
	}
}
