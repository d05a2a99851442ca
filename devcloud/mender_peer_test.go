package devcloud

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/testkit"
	"github.com/edgefort/edgefort/updater/artifact"
)

// Paths fixed in the Debian mender-client 3.4: the identity script, and
// the file naming the current Artifact while the client's database has
// none (the ArtifactInfoFile setting is not honoured there).
const (
	menderIdentityScript = "/usr/share/mender/identity/mender-device-identity"
	menderArtifactInfo   = "/etc/mender/artifact_info"
)

// TestMenderPeerClient runs Debian's real mender-client 3.4 against the
// server over mTLS: v2 next off (the client falls back to v1), one 401 on
// a status report (it re-authenticates), the download cut part-way (it
// resumes with Range after its fixed one-minute wait), the single-file
// module installs, and the deployment ends in success.
func TestMenderPeerClient(t *testing.T) {
	menderBin := peertest.Require(t, "mender")
	if testing.Short() {
		t.Skip("the client waits a minute before resuming a download; skipped with -short")
	}
	for _, f := range []struct {
		path, content string
		mode          os.FileMode
	}{
		{menderIdentityScript, "#!/bin/sh\necho mac=02:00:00:00:00:01\n", 0o755},
		{menderArtifactInfo, "artifact_name=app-v1\n", 0o644},
	} {
		if err := ensureSystemFile(t, f.path, f.content, f.mode); err != nil {
			peertest.Skipf(t, "the Mender client needs %v", err)
		}
	}

	dir := t.TempDir()
	ca, err := NewCA("mender peer CA")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	var serverLog testkit.SyncBuffer
	s := newTestMender(t, MenderOptions{
		CA: ca, ClientCAs: pool, ManualAccept: true, DisableV2: true,
		Logger: slog.New(slog.NewTextHandler(&serverLog, nil)),
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", serverLog.String())
		}
	})

	// Device key and certificate: the same EC key signs auth requests, so
	// the server accepts the device by its certificate.
	key, cert, err := ca.Issue("mender-peer-device", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	dest := filepath.Join(dir, "dest")
	files := map[string][]byte{
		"device.key":       pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		"device.crt":       append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...),
		"ca.crt":           pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}),
		"artifact_info":    []byte("artifact_name=app-v1\n"),
		"data/device_type": []byte("device_type=edge-1\n"),
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf, _ := json.Marshal(map[string]any{
		"ServerURL":                    s.URL(),
		"ServerCertificate":            filepath.Join(dir, "ca.crt"),
		"HttpsClient":                  map[string]string{"Certificate": filepath.Join(dir, "device.crt"), "Key": filepath.Join(dir, "device.key")},
		"Security":                     map[string]string{"AuthPrivateKey": filepath.Join(dir, "device.key")},
		"UpdatePollIntervalSeconds":    1,
		"InventoryPollIntervalSeconds": 2,
		"RetryPollIntervalSeconds":     1,
		"DeviceTypeFile":               filepath.Join(data, "device_type"),
		"ModulesPath":                  "/usr/share/mender/modules/v3",
		"ModulesWorkPath":              filepath.Join(data, "modules", "v3"),
		"UpdateLogPath":                data,
		"DBus":                         map[string]bool{"Enabled": false},
	})
	confPath := filepath.Join(dir, "mender.conf")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		t.Fatal(err)
	}

	payload := make([]byte, 256<<10)
	rand.Read(payload)
	name, err := s.UploadArtifact(bytes.NewReader(singleFileArtifact(t, "app-v2", dest, payload)))
	if err != nil {
		t.Fatal(err)
	}
	depID, err := s.CreateDeployment(name)
	if err != nil {
		t.Fatal(err)
	}
	s.SetFaults(MenderFaults{CutAfter: 100_000, Unauthorized: EndpointStatus})

	ctx, cancel := context.WithCancel(context.Background())
	var out testkit.SyncBuffer
	cmd := exec.CommandContext(ctx, menderBin, "-c", confPath, "--data", data, "daemon")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("mender-client output:\n%s", out.String())
		}
	})

	deviceID := MenderDeviceID(`{"mac":"02:00:00:00:00:01"}`)
	deadline := time.Now().Add(3 * time.Minute)
	var got []string
	for time.Now().Before(deadline) {
		got = s.Statuses(deviceID, depID)
		if len(got) > 0 && slices.Contains(menderFinal, got[len(got)-1]) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(got) == 0 || got[len(got)-1] != "success" {
		t.Fatalf("statuses = %v, want ... success", got)
	}
	if !slices.Contains(got, "downloading") || !slices.Contains(got, "installing") {
		t.Errorf("statuses = %v, want downloading and installing before success", got)
	}
	installed, err := os.ReadFile(filepath.Join(dest, "app.bin"))
	if err != nil || !bytes.Equal(installed, payload) {
		t.Errorf("installed file: %d bytes, %v; want the %d-byte payload", len(installed), err, len(payload))
	}
	if log := serverLog.String(); !strings.Contains(log, `range="bytes=100000-"`) || !strings.Contains(log, "unauthorized (injected)") {
		t.Errorf("server log shows no resume from byte 100000 or no injected 401:\n%s", log)
	}
	if inv := s.Inventory(deviceID); inv["device_type"].Value == nil {
		t.Errorf("inventory = %v, want device_type", inv)
	}
}

// singleFileArtifact is a module Artifact for Mender's stock single-file
// update module, installing payload as destDir/app.bin.
func singleFileArtifact(t *testing.T, name, destDir string, payload []byte) []byte {
	t.Helper()
	return testkit.Artifact{
		Name: name, DeviceType: "edge-1", Module: "single-file", Compression: artifact.None,
		Files: []testkit.File{{Name: "app.bin", Data: payload}, {Name: "dest_dir", Data: []byte(destDir)}, {Name: "filename", Data: []byte("app.bin")}},
	}.Bytes(t)
}

// ensureSystemFile makes sure the file at path holds content: it writes it
// when absent and removes it after the test; an existing file must already
// hold content, since the test will not overwrite a real configuration.
func ensureSystemFile(t *testing.T, path, content string, mode os.FileMode) error {
	if b, err := os.ReadFile(path); err == nil {
		if string(b) != content {
			return fmt.Errorf("%s exists with other content; not overwriting it", path)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("provide %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		return fmt.Errorf("provide %s: %w", path, err)
	}
	t.Cleanup(func() { os.Remove(path) })
	return nil
}
