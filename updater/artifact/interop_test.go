package artifact

// Interop with Debian's mender-artifact 3.9 and openssl, both ways. The
// peers run at test time on files in t.TempDir(); keys are made by openssl
// in the forms mender-artifact 3.9 takes (PKCS#1 RSA, SEC1 EC).
//
// Not covered: zstd, which mender-artifact only reads from 3.10.1 on (3.9
// refuses header.tar.zst as "Invalid structure"); zstd is covered by the
// round-trip tests instead.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// peerKeys are key files made by openssl.
type peerKeys struct {
	rsa, rsaPub, ec, ecPub, ecPKCS8 string
}

// opensslKeys makes an RSA-3072 and an ECDSA P-256 key pair in dir.
func opensslKeys(t *testing.T, dir string) peerKeys {
	t.Helper()
	requirePeer(t, "openssl")
	k := peerKeys{
		rsa: filepath.Join(dir, "rsa.pem"), rsaPub: filepath.Join(dir, "rsa.pub.pem"),
		ec: filepath.Join(dir, "ec.pem"), ecPub: filepath.Join(dir, "ec.pub.pem"), ecPKCS8: filepath.Join(dir, "ec.p8.pem"),
	}
	p8 := filepath.Join(dir, "rsa.p8.pem")
	runPeer(t, "openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072", "-out", p8)
	runPeer(t, "openssl", "rsa", "-in", p8, "-traditional", "-out", k.rsa)
	runPeer(t, "openssl", "rsa", "-in", k.rsa, "-pubout", "-out", k.rsaPub)
	runPeer(t, "openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", k.ec)
	runPeer(t, "openssl", "ec", "-in", k.ec, "-pubout", "-out", k.ecPub)
	runPeer(t, "openssl", "pkcs8", "-topk8", "-nocrypt", "-in", k.ec, "-out", k.ecPKCS8)
	return k
}

// runPeer runs a program and fails the test if it fails.
func runPeer(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func loadPub(t *testing.T, path string) crypto.PublicKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePublicKeyPEM(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k
}

func loadPriv(t *testing.T, path string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k
}

// writeInput writes a test input file and returns its path.
func writeInput(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pseudoRandom is n deterministic bytes that do not compress.
func pseudoRandom(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// TestInteropMenderToEdgefort: Artifacts written by mender-artifact
// (rootfs-image and module-image; gzip, lzma, none; unsigned, RSA-3072 and
// ECDSA P-256) are read and verified by the reader, payload bytes intact,
// and refused with the wrong key.
func TestInteropMenderToEdgefort(t *testing.T) {
	requirePeer(t, "mender-artifact")
	dir := t.TempDir()
	keys := opensslKeys(t, dir)
	inputs := map[string][]byte{
		"rootfs.ext4": pseudoRandom(96<<10, 1),
		"p1.txt":      []byte("hello from mender-artifact\n"),
		"p2.bin":      pseudoRandom(70<<10, 2),
	}
	for name, data := range inputs {
		writeInput(t, dir, name, data)
	}
	pubs := map[string]crypto.PublicKey{"rsa": loadPub(t, keys.rsaPub), "ecdsa": loadPub(t, keys.ecPub)}
	privs := map[string]string{"rsa": keys.rsa, "ecdsa": keys.ec}
	other := map[string]string{"rsa": "ecdsa", "ecdsa": "rsa"}

	for _, kind := range []string{"rootfs-image", "module-image"} {
		for _, comp := range []string{"gzip", "lzma", "none"} {
			for _, sig := range []string{"unsigned", "rsa", "ecdsa"} {
				t.Run(kind+"/"+comp+"/"+sig, func(t *testing.T) {
					t.Parallel()
					out := filepath.Join(t.TempDir(), "a.mender")
					args := []string{"write", kind, "-t", "edge-1", "-t", "edge-2", "-n", "peer-v1", "-o", out, "--compression", comp}
					files := []string{"rootfs.ext4"}
					wantType := "rootfs-image"
					if kind == "rootfs-image" {
						args = append(args, "-f", filepath.Join(dir, "rootfs.ext4"), "--no-progress")
					} else {
						files = []string{"p1.txt", "p2.bin"}
						wantType = "single-file"
						args = append(args, "-T", "single-file", "-f", filepath.Join(dir, "p1.txt"), "-f", filepath.Join(dir, "p2.bin"))
					}
					var opts Options
					wantSig := Unsigned
					if sig != "unsigned" {
						args = append(args, "-k", privs[sig])
						opts.Keys = []crypto.PublicKey{pubs[sig]}
						wantSig = SignedVerified
					}
					runPeer(t, "mender-artifact", args...)
					art, err := os.ReadFile(out)
					if err != nil {
						t.Fatal(err)
					}

					rec := newRecorder()
					h, err := Read(bytes.NewReader(art), opts, nil, rec)
					if err != nil {
						t.Fatalf("Read: %v", err)
					}
					if h.Name != "peer-v1" || h.Payloads[0].Type != wantType || h.Signature != wantSig ||
						!cmp.Equal(h.Depends.DeviceTypes, []string{"edge-1", "edge-2"}) {
						t.Errorf("header: name %q, type %q, signature %v, device types %q", h.Name, h.Payloads[0].Type, h.Signature, h.Depends.DeviceTypes)
					}
					want := map[string][]byte{}
					for _, f := range files {
						want["data/0000/"+f] = inputs[f]
					}
					if d := cmp.Diff(want, rec.stored); d != "" {
						t.Errorf("payload bytes differ from the inputs (-want +got):\n%s", d)
					}
					if len(rec.verified) != len(files) {
						t.Errorf("verified %q, want all of %q", rec.verified, files)
					}
					if kind == "rootfs-image" {
						if got, want := h.Payloads[0].Provides["rootfs-image.checksum"], fmt.Sprintf("%x", sha256sum(inputs["rootfs.ext4"])); got != want {
							t.Errorf("rootfs-image.checksum = %q, want %q", got, want)
						}
					}
					if sig == "unsigned" {
						return
					}
					rec = newRecorder()
					_, err = Read(bytes.NewReader(art), Options{Keys: []crypto.PublicKey{pubs[other[sig]]}}, nil, rec)
					if !errors.Is(err, ErrSignature) || len(rec.order) > 0 {
						t.Errorf("with the wrong key: error %v, stored %q; want ErrSignature and nothing stored", err, rec.order)
					}
				})
			}
		}
	}

	t.Run("state scripts, meta-data, provides, depends, groups", func(t *testing.T) {
		sdir := t.TempDir()
		scripts := map[string][]byte{
			"ArtifactInstall_Enter_00":          []byte("#!/bin/sh\necho install\n"),
			"ArtifactCommit_Leave_10_notify":    []byte("#!/bin/sh\necho commit\n"),
			"ArtifactRollback_Error_99_cleanup": []byte("#!/bin/sh\nexit 0\n"),
		}
		args := []string{"write", "module-image", "-T", "dir-overlay", "-t", "edge-1", "-n", "scripted-v2",
			"-N", "scripted-v1", "-N", "scripted-v0", "-G", "grp-a", "-g", "grp-b",
			"-p", "app.version:2.0", "-d", "hw:rev-b", "--clears-provides", "app.*",
			"-m", writeInput(t, sdir, "meta.json", []byte(`{"dest":"/opt/x","nested":{"a":1}}`)),
			"-f", filepath.Join(dir, "p1.txt"), "-k", keys.rsa, "--compression", "lzma", "-o", filepath.Join(sdir, "s.mender")}
		for name, data := range scripts {
			args = append(args, "-s", writeInput(t, sdir, name, data))
		}
		runPeer(t, "mender-artifact", args...)
		f, err := os.Open(filepath.Join(sdir, "s.mender"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rec := newRecorder()
		h, err := Read(f, Options{Keys: []crypto.PublicKey{pubs["rsa"]}}, nil, rec)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		gotScripts := map[string][]byte{}
		for _, s := range h.Scripts {
			gotScripts[s.Name] = s.Data
		}
		if d := cmp.Diff(scripts, gotScripts); d != "" {
			t.Errorf("scripts (-want +got):\n%s", d)
		}
		p := h.Payloads[0]
		if h.Group != "grp-b" || !cmp.Equal(h.Depends.ArtifactNames, []string{"scripted-v1", "scripted-v0"}) ||
			!cmp.Equal(h.Depends.ArtifactGroups, []string{"grp-a"}) || p.Provides["app.version"] != "2.0" ||
			!cmp.Equal(p.Depends, map[string][]string{"hw": {"rev-b"}}) || !cmp.Equal(p.ClearsProvides, []string{"app.*", "rootfs-image.dir-overlay.*"}) {
			t.Errorf("header: %+v", summarize(h))
		}
		if string(p.MetaData) != `{"dest":"/opt/x","nested":{"a":1}}` {
			t.Errorf("meta-data = %s", p.MetaData)
		}
		err = CheckDepends("edge-1", Provides{ProvidesName: "scripted-v0", ProvidesGroup: "grp-a", "hw": "rev-b"}, h)
		if err != nil {
			t.Errorf("CheckDepends: %v", err)
		}
		if got := NewProvides(Provides{ProvidesName: "scripted-v0", "app.old": "x", "rootfs-image.version": "r1"}, h); !cmp.Equal(got, Provides{
			ProvidesName: "scripted-v2", ProvidesGroup: "grp-b", "app.version": "2.0", "rootfs-image.dir-overlay.version": "scripted-v2", "rootfs-image.version": "r1"}) {
			t.Errorf("NewProvides = %v", got)
		}
	})

	t.Run("bootstrap", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "boot.mender")
		runPeer(t, "mender-artifact", "write", "bootstrap-artifact", "-t", "edge-1", "-n", "boot-1", "-p", "rootfs-image.version:boot-1", "-o", out)
		f, _ := os.Open(out)
		defer f.Close()
		rec := newRecorder()
		h, err := Read(f, Options{}, nil, rec)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if h.Payloads[0].Type != "" || len(rec.order) != 0 || h.Payloads[0].Provides["rootfs-image.version"] != "boot-1" {
			t.Errorf("bootstrap: type %q, stored %q, provides %v", h.Payloads[0].Type, rec.order, h.Payloads[0].Provides)
		}
	})

	t.Run("augmented", func(t *testing.T) {
		adir := t.TempDir()
		out := filepath.Join(adir, "aug.mender")
		runPeer(t, "mender-artifact", "write", "module-image", "-T", "dir-overlay", "-t", "edge-1", "-n", "aug-v2",
			"-f", filepath.Join(dir, "p1.txt"), "--augment-type", "dir-overlay", "--augment-file", filepath.Join(dir, "p2.bin"),
			"--augment-meta-data", writeInput(t, adir, "m.json", []byte(`{"k":"v"}`)), "--augment-depends", "x:y",
			"-k", keys.ec, "-o", out)
		art, _ := os.ReadFile(out)
		opts := Options{Keys: []crypto.PublicKey{pubs["ecdsa"]}}
		if _, err := Read(bytes.NewReader(art), opts, nil, Discard); err == nil {
			t.Error("augmented Artifact accepted without AugmentTypes")
		}
		opts.AugmentTypes = []string{"dir-overlay"}
		rec := newRecorder()
		h, err := Read(bytes.NewReader(art), opts, nil, rec)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		a := h.Payloads[0].Augment
		if a == nil || !cmp.Equal(a.Depends, map[string][]string{"x": {"y"}}) || string(a.MetaData) != `{"k":"v"}` {
			t.Errorf("augment = %+v", a)
		}
		if d := cmp.Diff([]string{"data/0000/p2.bin"}, rec.augmented); d != "" {
			t.Errorf("augmented files (-want +got):\n%s", d)
		}
		if !bytes.Equal(rec.stored["data/0000/p2.bin"], inputs["p2.bin"]) {
			t.Error("augment file bytes differ")
		}
	})

	t.Run("tampering rejected before activation", func(t *testing.T) {
		tdir := t.TempDir()
		signed, unsigned := filepath.Join(tdir, "s.mender"), filepath.Join(tdir, "u.mender")
		common := []string{"write", "module-image", "-T", "single-file", "-t", "edge-1", "-n", "t-v1", "-f", filepath.Join(dir, "p1.txt"), "--compression", "none"}
		runPeer(t, "mender-artifact", append(common, "-k", keys.rsa, "-o", signed)...)
		runPeer(t, "mender-artifact", append(common, "-o", unsigned)...)
		good, _ := os.ReadFile(signed)
		plain, _ := os.ReadFile(unsigned)
		rsaKeys := Options{Keys: []crypto.PublicKey{pubs["rsa"]}}

		flipPayload := bytes.Clone(good)
		flipPayload[bytes.Index(flipPayload, []byte("hello from"))] ^= 1
		ms := splitTar(t, good)
		i := find(t, ms, memberManifest)
		ms[i].data = bytes.Replace(ms[i].data, []byte("p1.txt"), []byte("p9.txt"), 1)
		editedManifest := joinTar(t, ms)

		tests := []struct {
			name   string
			art    []byte
			opts   Options
			accept func(*Header) error
			wantIs error
		}{
			{"payload byte", flipPayload, rsaKeys, nil, ErrChecksum},
			{"manifest", editedManifest, rsaKeys, nil, ErrSignature},
			{"wrong key", good, Options{Keys: []crypto.PublicKey{pubs["ecdsa"]}}, nil, ErrSignature},
			{"wrong device type", good, rsaKeys, func(h *Header) error { return CheckDepends("edge-2", Provides{}, h) }, ErrDepends},
			{"unsigned when required", plain, rsaKeys, nil, ErrUnsigned},
		}
		for _, tt := range tests {
			rec := newRecorder()
			_, err := Read(bytes.NewReader(tt.art), tt.opts, tt.accept, rec)
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("%s: error %v, want %v", tt.name, err, tt.wantIs)
			}
			if len(rec.verified) > 0 || (tt.wantIs != ErrChecksum && len(rec.order) > 0) {
				t.Errorf("%s: stored %q, verified %q", tt.name, rec.order, rec.verified)
			}
		}
	})

	t.Run("ECDSA DER signature made by openssl", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "a.mender")
		runPeer(t, "mender-artifact", "write", "module-image", "-T", "single-file", "-t", "edge-1", "-n", "der-v1",
			"-f", filepath.Join(dir, "p1.txt"), "-k", keys.ec, "-o", out)
		art, _ := os.ReadFile(out)
		ms := splitTar(t, art)
		mfile := writeInput(t, t.TempDir(), "manifest", ms[find(t, ms, memberManifest)].data)
		der := runPeer(t, "openssl", "dgst", "-sha256", "-sign", keys.ec, mfile)
		ms[find(t, ms, memberSignature)].data = []byte(base64.StdEncoding.EncodeToString([]byte(der)))
		if _, err := Read(bytes.NewReader(joinTar(t, ms)), Options{Keys: []crypto.PublicKey{pubs["ecdsa"]}}, nil, Discard); err != nil {
			t.Errorf("DER signature from openssl: %v", err)
		}
	})
}

// TestInteropEdgefortToMender: Artifacts from the writer (gzip, lzma, none;
// unsigned, RSA-3072, ECDSA P-256) pass `mender-artifact validate` with the
// key and `mender-artifact read` shows what was written; openssl verifies
// the signatures independently.
func TestInteropEdgefortToMender(t *testing.T) {
	requirePeer(t, "mender-artifact")
	dir := t.TempDir()
	keys := opensslKeys(t, dir)
	signers := map[string]crypto.Signer{
		"unsigned": nil,
		"rsa":      loadPriv(t, keys.rsa),
		"ecdsa":    loadPriv(t, keys.ec),
		"ecdsa-p8": loadPriv(t, keys.ecPKCS8),
	}
	pubFiles := map[string]string{"rsa": keys.rsaPub, "ecdsa": keys.ecPub, "ecdsa-p8": keys.ecPub}
	wrongPub := map[string]string{"rsa": keys.ecPub, "ecdsa": keys.rsaPub, "ecdsa-p8": keys.rsaPub}

	for _, comp := range []Compression{Gzip, XZ, None} {
		for _, sig := range []string{"unsigned", "rsa", "ecdsa", "ecdsa-p8"} {
			if sig == "ecdsa-p8" && comp != Gzip {
				continue
			}
			t.Run(comp.String()+"/"+sig, func(t *testing.T) {
				spec := testSpec(comp, signers[sig])
				spec.TempDir = t.TempDir()
				spec.Payloads[0].Depends["board"] = []string{"a", "b"}
				out := filepath.Join(t.TempDir(), "e.mender")
				f, err := os.Create(out)
				if err != nil {
					t.Fatal(err)
				}
				if err := Write(f, spec); err != nil {
					t.Fatal(err)
				}
				f.Close()

				var keyArgs []string
				wantSig := "Signature: no signature"
				if sig != "unsigned" {
					keyArgs = []string{"-k", pubFiles[sig]}
					wantSig = "Signature: signed and verified correctly"
				}
				got := runPeer(t, "mender-artifact", append(append([]string{"validate"}, keyArgs...), out)...)
				if !strings.Contains(got, "validated successfully") {
					t.Errorf("validate output:\n%s", got)
				}
				got = runPeer(t, "mender-artifact", append(append([]string{"read"}, keyArgs...), out)...)
				for _, want := range []string{
					"Name: app-v2", wantSig, "Compatible devices: '[edge-1 edge-2]'", "Provides group: prod",
					"Depends on one of artifact(s): [app-v1]", "Type:   single-file",
					"rootfs-image.single-file.version: 2", "hw: rev-b", "board: [a b]",
					`Clears Provides: ["rootfs-image.single-file.*"]`, "ArtifactInstall_Enter_00", `"dest_dir": "/opt/app"`,
					"name:     a.txt", "size:     6", "checksum: " + fmt.Sprintf("%x", sha256sum([]byte("hello\n"))),
					"name:     b.bin", "size:     15000",
				} {
					if !strings.Contains(got, want) {
						t.Errorf("mender-artifact read output lacks %q:\n%s", want, got)
					}
				}
				if sig == "unsigned" {
					return
				}
				if out, err := exec.Command("mender-artifact", "validate", "-k", wrongPub[sig], out).CombinedOutput(); err == nil {
					t.Errorf("validate with the wrong key succeeded:\n%s", out)
				}
				checkWithOpenSSL(t, out, pubFiles[sig])
			})
		}
	}

	t.Run("rootfs-image", func(t *testing.T) {
		for _, comp := range []Compression{Gzip, XZ, None} {
			rootfs := pseudoRandom(200<<10, 3)
			spec := &Spec{
				Name: "rootfs-v2", Depends: Depends{DeviceTypes: []string{"edge-1"}}, Compression: comp,
				Key: signers["rsa"], TempDir: t.TempDir(),
				Payloads: []PayloadSpec{{
					Type: "rootfs-image", Provides: map[string]string{"rootfs-image.version": "rootfs-v2"},
					ChecksumProvide: "rootfs-image.checksum", ClearsProvides: []string{"artifact_group", "rootfs_image_checksum", "rootfs-image.*"},
					Files: []Source{memSource("rootfs.ext4", rootfs)},
				}},
			}
			out := filepath.Join(t.TempDir(), "r.mender")
			f, _ := os.Create(out)
			if err := Write(f, spec); err != nil {
				t.Fatal(err)
			}
			f.Close()
			runPeer(t, "mender-artifact", "validate", "-k", keys.rsaPub, out)
			got := runPeer(t, "mender-artifact", "read", "-k", keys.rsaPub, out)
			if want := fmt.Sprintf("rootfs-image.checksum: %x", sha256sum(rootfs)); !strings.Contains(got, want) {
				t.Errorf("%s: read output lacks %q:\n%s", comp, want, got)
			}
		}
	})

	t.Run("tampered payload fails mender-artifact validate too", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "t.mender")
		os.WriteFile(out, tamperPayload(t, writeArtifact(t, testSpec(None, signers["ecdsa"]))), 0o644)
		got, err := exec.Command("mender-artifact", "validate", "-k", keys.ecPub, out).CombinedOutput()
		if err == nil || !strings.Contains(string(got), "invalid checksum") {
			t.Errorf("validate: %v\n%s", err, got)
		}
	})
}

// checkWithOpenSSL verifies an Artifact's manifest.sig with openssl dgst,
// converting a raw ECDSA r‖s to the DER openssl expects.
func checkWithOpenSSL(t *testing.T, art, pubFile string) {
	t.Helper()
	b, err := os.ReadFile(art)
	if err != nil {
		t.Fatal(err)
	}
	ms := splitTar(t, b)
	sig, err := base64.StdEncoding.DecodeString(string(ms[find(t, ms, memberSignature)].data))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := loadPub(t, pubFile).(*ecdsa.PublicKey); ok {
		if len(sig) != 64 {
			t.Fatalf("ECDSA signature is %d bytes, want raw r||s of 64", len(sig))
		}
		sig, _ = asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
	}
	d := t.TempDir()
	mfile := writeInput(t, d, "manifest", ms[find(t, ms, memberManifest)].data)
	sfile := writeInput(t, d, "sig", sig)
	if out := runPeer(t, "openssl", "dgst", "-sha256", "-verify", pubFile, "-signature", sfile, mfile); !strings.Contains(out, "Verified OK") {
		t.Errorf("openssl: %s", out)
	}
}
