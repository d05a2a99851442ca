package rootfs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/bootenv"
	"github.com/edgefort/edgefort/updater/module"
)

const (
	deviceType = "edge-ab"
	partSize   = 1 << 20
	// The fill patterns of the partitions before a test, so that a byte
	// written where it should not be shows.
	fillActive   = 0xAA
	fillInactive = 0xEE
)

// device is a simulated A/B device in files: two partitions (part2 and
// part3), a grub-mender-grubenv environment booting part2, and the
// mountinfo and kernel command line the installer reads.
type device struct {
	dir                string
	a, b               string
	mountInfo, cmdline string
	env                *bootenv.GRUB
	initialA, initialB []byte
	initialEnv         bootenv.Vars
}

func newDevice(t *testing.T) *device {
	t.Helper()
	dir := t.TempDir()
	d := &device{
		dir: dir, a: filepath.Join(dir, "part2"), b: filepath.Join(dir, "part3"),
		mountInfo: filepath.Join(dir, "mountinfo"), cmdline: filepath.Join(dir, "cmdline"),
		env:        &bootenv.GRUB{Dir: filepath.Join(dir, "boot")},
		initialA:   bytes.Repeat([]byte{fillActive}, partSize),
		initialB:   bytes.Repeat([]byte{fillInactive}, partSize),
		initialEnv: bootenv.Vars{bootenv.VarBootCount: "0", bootenv.VarBootPart: "2", bootenv.VarUpgradeAvailable: "0"},
	}
	write(t, d.a, d.initialA)
	write(t, d.b, d.initialB)
	if err := bootenv.CreateGRUB(d.env.Dir, d.initialEnv); err != nil {
		t.Fatal(err)
	}
	d.boot(t, d.a)
	return d
}

// boot makes the device look as if it had booted part: / is mounted from
// it and root= names it.
func (d *device) boot(t *testing.T, part string) {
	t.Helper()
	write(t, d.mountInfo, fmt.Appendf(nil, "22 1 259:2 / / rw,relatime shared:1 - ext4 %s rw\n23 22 0:5 / /dev rw - devtmpfs udev rw\n", part))
	write(t, d.cmdline, fmt.Appendf(nil, "console=ttyS0 root=%s rootwait\n", part))
}

func (d *device) installer(t *testing.T, readBack bool) *Installer {
	t.Helper()
	in, err := New(Options{PartA: d.a, PartB: d.b, Env: d.env, ReadBack: readBack, MountInfo: d.mountInfo, Cmdline: d.cmdline})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func (d *device) readEnv(t *testing.T) bootenv.Vars {
	t.Helper()
	v, err := d.env.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func image(n int, seed uint64) []byte {
	b := make([]byte, n)
	mrand.NewChaCha8([32]byte{byte(seed), 1}).Read(b)
	return b
}

// signingKey is an ECDSA P-256 key as PEM for mender-artifact -k, and its
// public half for the reader.
func signingKey(t *testing.T) (string, crypto.PublicKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	write(t, path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	return path, k.Public()
}

// menderArtifact has the real mender-artifact write a rootfs-image
// Artifact of img; key "" leaves it unsigned.
func menderArtifact(t *testing.T, img []byte, compression, key string) []byte {
	t.Helper()
	tool := peertest.Require(t, "mender-artifact")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "rootfs.ext4"), filepath.Join(dir, "a.mender")
	write(t, in, img)
	args := []string{"write", "rootfs-image", "-t", deviceType, "-n", "rootfs-v2", "-f", in, "-o", out, "--compression", compression, "--no-progress"}
	if key != "" {
		args = append(args, "-k", key)
	}
	if b, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("mender-artifact %q: %v: %s", args, err, b)
	}
	return read(t, out)
}

// sessionSink hands the Artifact's files to one download session.
type sessionSink struct{ dl module.Download }

func (s sessionSink) Store(f *artifact.File, r io.Reader) error { return s.dl.Store(f, r) }
func (sessionSink) Verified(*artifact.File) error               { return nil }

// fetch reads art as the state machine does: header, tree, the
// installer's Download, the payload through it, Finish. It returns the
// payload and the first error.
func fetch(t *testing.T, in *Installer, art []byte, keys ...crypto.PublicKey) (module.Payload, error) {
	t.Helper()
	rd := artifact.NewReader(bytes.NewReader(art), artifact.Options{Keys: keys})
	h, err := rd.Header()
	if err != nil {
		return module.Payload{}, err
	}
	p := module.Payload{Index: 0, Type: Type, Tree: filepath.Join(t.TempDir(), "payloads", "0000", "tree")}
	if err := os.MkdirAll(filepath.Dir(p.Tree), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := module.PrepareTree(p.Tree, module.TreeInfo{CurrentArtifactName: "rootfs-v1", DeviceType: deviceType, Header: h}); err != nil {
		t.Fatal(err)
	}
	dl, err := in.Download(context.Background(), p)
	if err != nil {
		return p, err
	}
	defer dl.Abort()
	if err := rd.Payloads(sessionSink{dl}); err != nil {
		return p, err
	}
	return p, dl.Finish(context.Background())
}

// moduleTree is an empty payload tree.
func moduleTree(t *testing.T) module.Payload {
	t.Helper()
	return module.Payload{Type: Type, Tree: t.TempDir()}
}

// nopEnv is a boot environment for tests that never reach it.
type nopEnv struct{}

func (nopEnv) Read(context.Context, ...string) (bootenv.Vars, error) { return bootenv.Vars{}, nil }
func (nopEnv) Write(context.Context, bootenv.Vars) error             { return nil }
