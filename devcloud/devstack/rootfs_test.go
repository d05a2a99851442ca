package devstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/updater/artifact"
)

// TestDevStackRootfsUpdate deploys rootfs-image Artifacts through the dev
// update server to the agent on the simulated A/B device: one written by
// the real mender-artifact installs into the partition not booted, the
// "reboot" starts a new agent on it, which commits and reports success
// with the new rootfs-image.version in the inventory; then one written by
// our own writer whose system panics: GRUB falls back, the deployment
// ends failure with the reason, and the device stays on the committed
// system.
func TestDevStackRootfsUpdate(t *testing.T) {
	menderArtifact := peertest.Require(t, "mender-artifact")
	d := startStack(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := Open(ctx, d.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	dev := d.device.dev
	if d.Booted() != dev.PartA {
		t.Fatalf("the device booted %q, want partition A %s", d.Booted(), dev.PartA)
	}

	image := make([]byte, 1<<20)
	rand.Read(image)
	img := filepath.Join(dir, "rootfs.img")
	if err := os.WriteFile(img, image, 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.mender")
	out, err := exec.Command(menderArtifact, "write", "rootfs-image", "-f", img, "-n", "dev-rootfs-1", "-t", DeviceType, "-o", good).CombinedOutput()
	if err != nil {
		t.Fatalf("mender-artifact: %v: %s", err, out)
	}
	var log bytes.Buffer
	if err := cl.Deploy(ctx, &log, good); err != nil {
		t.Fatalf("deploy dev-rootfs-1: %v\n%s", err, log.String())
	}
	for _, s := range []string{"  rebooting\n", "  success\n", "  inventory: rootfs-image.version=dev-rootfs-1\n"} {
		if !strings.Contains(log.String(), s) {
			t.Errorf("the deployment's statuses lack %q:\n%s", s, log.String())
		}
	}
	if d.Booted() != dev.PartB {
		t.Errorf("after the update the device runs %q, want partition B %s", d.Booted(), dev.PartB)
	}
	if got := readHead(t, dev.PartB, len(image)); !bytes.Equal(got, image) {
		t.Error("partition B does not hold the image")
	}
	if got := readHead(t, dev.PartA, len(factoryImage)); string(got) != factoryImage {
		t.Errorf("partition A, the old system, was written: begins %q", got)
	}
	waitInventory(ctx, t, cl, "rootfs-image.version", "dev-rootfs-1")

	bad := filepath.Join(dir, "bad.mender")
	writeRootfsArtifact(t, bad, "dev-rootfs-2", append([]byte(PanicMarker), image[:4096]...))
	log.Reset()
	err = cl.Deploy(ctx, &log, bad)
	if err == nil || !strings.Contains(err.Error(), "ended failure") || !strings.Contains(err.Error(), "the boot loader fell back") {
		t.Errorf("deploy of a system that panics = %v, want it to end failure as the boot loader fell back\n%s", err, log.String())
	}
	if d.Booted() != dev.PartB {
		t.Errorf("after the fallback the device runs %q, want partition B %s", d.Booted(), dev.PartB)
	}
	if got := readHead(t, dev.PartB, len(image)); !bytes.Equal(got, image) {
		t.Error("partition B, the committed system, was written")
	}
	us, err := cl.admin.UpdateStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if us.ArtifactName != "dev-rootfs-1" {
		t.Errorf("the device reports Artifact %q, want dev-rootfs-1", us.ArtifactName)
	}
	waitInventory(ctx, t, cl, "rootfs-image.version", "dev-rootfs-1")
}

func readHead(t *testing.T, path string, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// writeRootfsArtifact writes a rootfs-image Artifact of image with our
// own writer.
func writeRootfsArtifact(t *testing.T, path, name string, image []byte) {
	t.Helper()
	p := artifact.RootfsImage(name, artifact.ImageDefaults{})
	p.Files = []artifact.Source{bytesSource("rootfs.img", string(image))}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = artifact.Write(f, &artifact.Spec{
		Name: name, Depends: artifact.Depends{DeviceTypes: []string{DeviceType}},
		Payloads: []artifact.PayloadSpec{p}, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitInventory waits until the update server's inventory of the device
// has attribute name = value.
func waitInventory(ctx context.Context, t *testing.T, cl *Client, name, value string) {
	t.Helper()
	devices, err := cl.acceptedDevices(ctx)
	if err != nil || len(devices) != 1 {
		t.Fatalf("accepted devices %q, %v; want one", devices, err)
	}
	var got json.RawMessage
	err = poll(ctx, 100*time.Millisecond, func() (bool, error) {
		var inv map[string]devcloud.InventoryAttribute
		if err := cl.menderCall(ctx, http.MethodGet, "devices/"+devices[0]+"/inventory", nil, &inv); err != nil {
			return false, err
		}
		got = inv[name].Value
		var s string
		return json.Unmarshal(got, &s) == nil && s == value, nil
	})
	if err != nil {
		t.Fatalf("inventory %s = %s, want %q: %v", name, got, value, err)
	}
}
