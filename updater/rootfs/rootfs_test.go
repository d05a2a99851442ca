package rootfs

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/updater/artifact"
	"github.com/edgefort/edgefort/updater/bootenv"
	"github.com/edgefort/edgefort/updater/module"
)

// TestInstallMenderArtifacts installs rootfs-image Artifacts written by
// the real mender-artifact (gzip, lzma, none; unsigned and signed) into
// the inactive partition file: it reads back byte-identical, the rest of
// the partition and the whole active partition are untouched, and
// ArtifactInstall sets Mender's variables to boot it on trial.
func TestInstallMenderArtifacts(t *testing.T) {
	key, pub := signingKey(t)
	img := image(partSize-4096-123, 7) // not a multiple of any block size
	for _, comp := range []string{"gzip", "lzma", "none"} {
		for _, signed := range []bool{false, true} {
			name := comp + "/unsigned"
			var keyPath string
			var keys []crypto.PublicKey
			if signed {
				name, keyPath, keys = comp+"/signed", key, []crypto.PublicKey{pub}
			}
			t.Run(name, func(t *testing.T) {
				art := menderArtifact(t, img, comp, keyPath)
				d := newDevice(t)
				in := d.installer(t, signed) // the read-back check on the signed half
				p, err := fetch(t, in, art, keys...)
				if err != nil {
					t.Fatalf("download: %v", err)
				}
				if d.readEnv(t)[bootenv.VarUpgradeAvailable] != "0" {
					t.Fatal("the boot environment changed before ArtifactInstall")
				}
				got := read(t, d.b)
				if !bytes.Equal(got[:len(img)], img) {
					t.Error("the inactive partition does not hold the image")
				}
				if !bytes.Equal(got[len(img):], d.initialB[len(img):]) {
					t.Error("bytes past the image changed in the inactive partition")
				}
				if !bytes.Equal(read(t, d.a), d.initialA) {
					t.Error("the active partition changed")
				}
				if err := in.Call(context.Background(), p, module.StateArtifactInstall); err != nil {
					t.Fatal(err)
				}
				want := bootenv.Vars{bootenv.VarUpgradeAvailable: "1", bootenv.VarBootPart: "3", bootenv.VarBootPartHex: "3", bootenv.VarBootCount: "0"}
				if diff := cmp.Diff(want, d.readEnv(t)); diff != "" {
					t.Errorf("boot environment after ArtifactInstall (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestOversizeImageRefused: an image one byte larger than the inactive
// partition is refused before a byte is written.
func TestOversizeImageRefused(t *testing.T) {
	art := menderArtifact(t, image(partSize+1, 3), "gzip", "")
	d := newDevice(t)
	in := d.installer(t, false)
	_, err := fetch(t, in, art)
	if err == nil || !strings.Contains(err.Error(), "refused before writing") || !strings.Contains(err.Error(), d.b) {
		t.Fatalf("download = %v, want refused naming the partition", err)
	}
	if !bytes.Equal(read(t, d.b), d.initialB) {
		t.Error("the inactive partition was written")
	}
	if !bytes.Equal(read(t, d.a), d.initialA) {
		t.Error("the active partition changed")
	}
	if diff := cmp.Diff(d.initialEnv, d.readEnv(t)); diff != "" {
		t.Errorf("boot environment changed (-want +got):\n%s", diff)
	}
}

// TestCorruptPayloadNotBootable flips one byte of the image inside an
// uncompressed Artifact: the checksum of the stream fails, the inactive
// partition is reported not bootable, ArtifactInstall refuses to make it
// the boot partition, and the boot environment stays as it was.
func TestCorruptPayloadNotBootable(t *testing.T) {
	img := image(partSize/2, 9)
	art := menderArtifact(t, img, "none", "")
	at := bytes.Index(art, img[:64])
	if at < 0 {
		t.Fatal("the image is not found in the uncompressed Artifact")
	}
	art[at+len(img)/2] ^= 0x01
	d := newDevice(t)
	in := d.installer(t, false)
	p, err := fetch(t, in, art)
	if !errors.Is(err, artifact.ErrChecksum) || !strings.Contains(err.Error(), "not bootable") || !strings.Contains(err.Error(), d.b) {
		t.Fatalf("download = %v, want a checksum error saying %s is not bootable", err, d.b)
	}
	if err := in.Call(context.Background(), p, module.StateArtifactInstall); err == nil || !strings.Contains(err.Error(), "not complete") {
		t.Errorf("ArtifactInstall after the failed download = %v, want refused", err)
	}
	if diff := cmp.Diff(d.initialEnv, d.readEnv(t)); diff != "" {
		t.Errorf("boot environment changed (-want +got):\n%s", diff)
	}
	if !bytes.Equal(read(t, d.a), d.initialA) {
		t.Error("the active partition changed")
	}
}

// TestReadBackCatchesADiskThatLies: the read-back check compares what the
// disk returns, not what was written.
func TestReadBackCatchesADiskThatLies(t *testing.T) {
	d := newDevice(t)
	write(t, d.b, bytes.Repeat([]byte{1}, 100))
	err := readBack(d.b, 100, [32]byte{})
	if !errors.Is(err, errReadBack) {
		t.Errorf("readBack = %v, want errReadBack", err)
	}
	if err := readBack(d.b, 200, [32]byte{}); !errors.Is(err, errReadBack) || !strings.Contains(err.Error(), "returned 100 bytes of the 200") {
		t.Errorf("readBack of a short partition = %v", err)
	}
}
