package keystore

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newTestKeyPairs opens key pairs in a new directory (which OpenKeyPairs
// creates) with a fixed clock.
func newTestKeyPairs(t *testing.T) *KeyPairs {
	t.Helper()
	return openTestKeyPairs(t, filepath.Join(t.TempDir(), "oidc-keys"))
}

func openTestKeyPairs(t *testing.T, dir string) *KeyPairs {
	t.Helper()
	k, err := OpenKeyPairs(dir, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatalf("OpenKeyPairs: %v", err)
	}
	k.now = func() time.Time { return testNow }
	return k
}

// rotatingKeyPairs returns key pairs with an active and a pending pair.
func rotatingKeyPairs(t *testing.T) (k *KeyPairs, active, pending KeyPairInfo) {
	t.Helper()
	k = newTestKeyPairs(t)
	active = mustGenerate(t, k, 2048)
	pending = mustGenerate(t, k, 2048)
	return k, active, pending
}

func mustGenerate(t *testing.T, k *KeyPairs, bits int) KeyPairInfo {
	t.Helper()
	info, err := k.Generate(bits)
	if err != nil {
		t.Fatalf("Generate(%d): %v", bits, err)
	}
	return info
}

// dirFiles lists the names in dir, sorted.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// pairFiles is what dirFiles returns for the pairs kids.
func pairFiles(kids ...string) []string {
	names := []string{oidcStateFile}
	for _, kid := range kids {
		names = append(names, kid+".crt", kid+".key")
	}
	slices.Sort(names)
	return names
}

func as(info KeyPairInfo, state string) KeyPairInfo {
	info.State = state
	return info
}

// pairKey is the public key of k's active or pending pair.
func pairKey(t *testing.T, k *KeyPairs, which string) *rsa.PublicKey {
	t.Helper()
	p, err := k.set.Load().pick(which)
	if err != nil {
		t.Fatal(err)
	}
	return &p.key.PublicKey
}

func TestKeyPairsGenerateRotation(t *testing.T) {
	k := newTestKeyPairs(t)
	if got := k.List(); len(got) != 0 {
		t.Fatalf("List of a new directory = %v, want none", got)
	}

	first := mustGenerate(t, k, 2048)
	if first.State != KeyPairActive || first.Bits != 2048 || !first.Created.Equal(testNow) {
		t.Errorf("first Generate = %+v, want active, 2048 bits, created %v", first, testNow)
	}
	if diff := cmp.Diff([]KeyPairInfo{first}, k.List()); diff != "" {
		t.Errorf("List after first Generate (-want +got):\n%s", diff)
	}
	token := goJoseEncrypt(t, pairKey(t, k, KeyPairActive), jose.RSA_OAEP_256, jose.A256GCM, first.ID, []byte(nestedJWT))

	second := mustGenerate(t, k, 2048)
	if second.State != KeyPairPending {
		t.Errorf("second Generate state = %q, want %q", second.State, KeyPairPending)
	}
	if diff := cmp.Diff([]KeyPairInfo{first, second}, k.List()); diff != "" {
		t.Errorf("List after second Generate (-want +got):\n%s", diff)
	}
	if _, err := k.Decrypt(token); err != nil {
		t.Errorf("Decrypt with the active pair while one is pending: %v", err)
	}

	third := mustGenerate(t, k, 2048)
	if diff := cmp.Diff([]KeyPairInfo{first, third}, k.List()); diff != "" {
		t.Errorf("List after third Generate (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(pairFiles(first.ID, third.ID), dirFiles(t, k.dir)); diff != "" {
		t.Errorf("files after the pending pair was replaced (-want +got):\n%s", diff)
	}
}

func TestKeyPairsGenerateBits(t *testing.T) {
	tests := []struct {
		bits    int
		wantErr bool
	}{
		{bits: 0, wantErr: true},
		{bits: 1024, wantErr: true},
		{bits: 3072, wantErr: true},
		{bits: 8192, wantErr: true},
		{bits: 2048},
		{bits: 4096},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.bits), func(t *testing.T) {
			k := newTestKeyPairs(t)
			info, err := k.Generate(tt.bits)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "use 2048 or 4096") {
					t.Errorf("Generate(%d) error = %v, want one naming 2048 and 4096", tt.bits, err)
				}
				if diff := cmp.Diff([]string(nil), dirFiles(t, k.dir)); diff != "" {
					t.Errorf("files after a refused Generate (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Generate(%d): %v", tt.bits, err)
			}
			if info.Bits != tt.bits || pairKey(t, k, KeyPairActive).N.BitLen() != tt.bits {
				t.Errorf("Generate(%d): info %d bits, key %d bits", tt.bits, info.Bits, pairKey(t, k, KeyPairActive).N.BitLen())
			}
		})
	}
}

var fingerprintPattern = regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`)

func TestKeyPairsExports(t *testing.T) {
	k, active, pending := rotatingKeyPairs(t)
	for _, info := range []KeyPairInfo{active, pending} {
		t.Run(info.State, func(t *testing.T) {
			key := pairKey(t, k, info.State)

			pubPEM, err := k.PublicPEM(info.State)
			if err != nil {
				t.Fatalf("PublicPEM: %v", err)
			}
			block, rest := pem.Decode(pubPEM)
			if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
				t.Fatalf("PublicPEM is not one PUBLIC KEY block:\n%s", pubPEM)
			}
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				t.Fatalf("PublicPEM: %v", err)
			}
			if !key.Equal(pub) {
				t.Errorf("PublicPEM holds another key than the pair's")
			}
			sum := sha256.Sum256(block.Bytes)
			if got, want := strings.ReplaceAll(info.Fingerprint, ":", ""), fmt.Sprintf("%X", sum); got != want || !fingerprintPattern.MatchString(info.Fingerprint) {
				t.Errorf("Fingerprint = %s, want SHA-256 of the public key DER %s, upper-case, colon-separated", info.Fingerprint, want)
			}

			certPEM, err := k.CertificatePEM(info.State)
			if err != nil {
				t.Fatalf("CertificatePEM: %v", err)
			}
			block, _ = pem.Decode(certPEM)
			if block == nil || block.Type != "CERTIFICATE" {
				t.Fatalf("CertificatePEM is not a CERTIFICATE block:\n%s", certPEM)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatalf("CertificatePEM: %v", err)
			}
			if !key.Equal(cert.PublicKey) {
				t.Errorf("certificate's public key is not the pair's")
			}
			if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
				t.Errorf("certificate is not self-signed by the pair's key: %v", err)
			}
			if cert.Subject.CommonName != oidcCertCN || cert.Issuer.CommonName != oidcCertCN {
				t.Errorf("certificate subject %q, issuer %q, want CN %q", cert.Subject, cert.Issuer, oidcCertCN)
			}
			if !cert.NotAfter.Equal(testNow.AddDate(10, 0, 0)) || cert.NotBefore.After(testNow) {
				t.Errorf("certificate valid %v to %v, want from before %v for 10 years", cert.NotBefore, cert.NotAfter, testNow)
			}
			if cert.KeyUsage != x509.KeyUsageKeyEncipherment {
				t.Errorf("certificate key usage = %v, want key encipherment", cert.KeyUsage)
			}
			if again, _ := k.CertificatePEM(info.State); !bytes.Equal(again, certPEM) {
				t.Errorf("CertificatePEM changed between calls")
			}

			jwks, err := k.JWKS(info.State)
			if err != nil {
				t.Fatalf("JWKS: %v", err)
			}
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(jwks, &set); err != nil {
				t.Fatalf("JWKS does not parse with go-jose: %v\n%s", err, jwks)
			}
			if len(set.Keys) != 1 {
				t.Fatalf("JWKS(%q) has %d keys, want 1", info.State, len(set.Keys))
			}
			jwk := set.Keys[0]
			tp, err := jwk.Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := jwk.KeyID, base64.RawURLEncoding.EncodeToString(tp); got != want || got != info.ID {
				t.Errorf("JWKS kid = %s, go-jose thumbprint %s, info ID %s: want all equal", got, want, info.ID)
			}
			if jwk.Use != "enc" || jwk.Algorithm != "RSA-OAEP-256" || !key.Equal(jwk.Key) {
				t.Errorf("JWKS key: use %q, alg %q, key equal %v; want enc, RSA-OAEP-256, true", jwk.Use, jwk.Algorithm, key.Equal(jwk.Key))
			}
			var raw struct{ Keys []map[string]any }
			if err := json.Unmarshal(jwks, &raw); err != nil {
				t.Fatal(err)
			}
			members := slices.Sorted(func(yield func(string) bool) {
				for m := range raw.Keys[0] {
					if !yield(m) {
						return
					}
				}
			})
			if diff := cmp.Diff([]string{"alg", "e", "kid", "kty", "n", "use"}, members); diff != "" {
				t.Errorf("JWK members (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("JWKS both", func(t *testing.T) {
		data, err := k.JWKS("")
		if err != nil {
			t.Fatal(err)
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(data, &set); err != nil {
			t.Fatal(err)
		}
		var kids []string
		for _, key := range set.Keys {
			kids = append(kids, key.KeyID)
		}
		if diff := cmp.Diff([]string{active.ID, pending.ID}, kids); diff != "" {
			t.Errorf("JWKS(\"\") kids (-want +got):\n%s", diff)
		}
	})

	t.Run("errors", func(t *testing.T) {
		empty := newTestKeyPairs(t)
		if got, err := empty.JWKS(""); err != nil || !bytes.Equal(bytes.Join(bytes.Fields(got), nil), []byte(`{"keys":[]}`)) {
			t.Errorf(`JWKS("") without pairs = %s, %v; want {"keys": []}`, got, err)
		}
		exports := map[string]func(string) ([]byte, error){
			"PublicPEM": empty.PublicPEM, "CertificatePEM": empty.CertificatePEM, "JWKS": empty.JWKS,
		}
		for name, export := range exports {
			for _, which := range []string{KeyPairActive, KeyPairPending} {
				if _, err := export(which); !errors.Is(err, ErrNotFound) {
					t.Errorf("%s(%q) without pairs: error %v, want ErrNotFound", name, which, err)
				}
			}
			if _, err := export("current"); err == nil || !strings.Contains(err.Error(), `use "active" or "pending"`) {
				t.Errorf(`%s("current") error = %v, want one naming the choices`, name, err)
			}
		}
	})
}

// verifyCase is a Verify scenario on key pairs with an active and a
// pending pair; token makes the verification token from the JWKS exports.
type verifyCase struct {
	name    string
	token   func(t *testing.T, k *KeyPairs) []byte
	keep    bool
	wantErr string // "" for success
}

// runVerifyCases checks Verify's outcome in List, on disk and for Decrypt.
func runVerifyCases(t *testing.T, tests []verifyCase) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, active, pending := rotatingKeyPairs(t)
			token := tt.token(t, k)
			got, err := k.Verify(token, tt.keep)
			var wantList []KeyPairInfo
			switch {
			case tt.wantErr == "":
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if diff := cmp.Diff(as(pending, KeyPairActive), got); diff != "" {
					t.Errorf("Verify result (-want +got):\n%s", diff)
				}
				wantList = []KeyPairInfo{as(pending, KeyPairActive)}
				if plain, err := k.Decrypt(token); err != nil || string(plain) != nestedJWT {
					t.Errorf("Decrypt of the verification token after promotion = %q, %v", plain, err)
				}
			case err == nil || !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Verify error = %v, want one containing %q", err, tt.wantErr)
			case tt.keep:
				wantList = []KeyPairInfo{active, pending}
			default:
				wantList = []KeyPairInfo{active}
			}
			if diff := cmp.Diff(wantList, k.List()); diff != "" {
				t.Errorf("List after Verify (-want +got):\n%s", diff)
			}
			var kids []string
			for _, info := range wantList {
				kids = append(kids, info.ID)
			}
			if diff := cmp.Diff(pairFiles(kids...), dirFiles(t, k.dir)); diff != "" {
				t.Errorf("files after Verify (-want +got):\n%s", diff)
			}
			// What is on disk is what is in memory.
			if diff := cmp.Diff(wantList, openTestKeyPairs(t, k.dir).List()); diff != "" {
				t.Errorf("List after reopening (-want +got):\n%s", diff)
			}
		})
	}
}

// unrelatedJWK is the public JWK of a key that is neither pair, with its
// kid or without.
func unrelatedJWK(t *testing.T, withKID bool) (*rsa.PublicKey, []byte) {
	t.Helper()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk := newPublicJWK(&other.PublicKey)
	if !withKID {
		jwk.KID = ""
	}
	data, err := json.Marshal(jwk)
	if err != nil {
		t.Fatal(err)
	}
	return &other.PublicKey, data
}

// TestKeyPairsVerifyJosePeer is the rotation with tokens an independent
// implementation, the npm package jose, encrypts to the JWKS exports, as an
// identity provider would.
func TestKeyPairsVerifyJosePeer(t *testing.T) {
	requirePeer(t, "node")
	requirePeer(t, "npm")
	runVerifyCases(t, []verifyCase{
		{
			name: "encrypted to the pending key",
			token: func(t *testing.T, k *KeyPairs) []byte {
				return joseEncrypt(t, jwkFromJWKS(t, k, KeyPairPending), "RSA-OAEP-256", "A256GCM", nestedJWT)
			},
		},
		{
			name: "encrypted to the pending key, RSA-OAEP A128CBC-HS256",
			token: func(t *testing.T, k *KeyPairs) []byte {
				return joseEncrypt(t, jwkFromJWKS(t, k, KeyPairPending), "RSA-OAEP", "A128CBC-HS256", nestedJWT)
			},
		},
		{
			name: "encrypted to an unrelated key",
			token: func(t *testing.T, k *KeyPairs) []byte {
				_, jwk := unrelatedJWK(t, true)
				return joseEncrypt(t, jwk, "RSA-OAEP-256", "A256GCM", nestedJWT)
			},
			wantErr: "token is encrypted to key",
		},
		{
			name: "encrypted to an unrelated key, keep pending",
			token: func(t *testing.T, k *KeyPairs) []byte {
				_, jwk := unrelatedJWK(t, true)
				return joseEncrypt(t, jwk, "RSA-OAEP-256", "A256GCM", nestedJWT)
			},
			keep:    true,
			wantErr: "the pending pair is kept",
		},
		{
			name: "encrypted to an unrelated key without kid",
			token: func(t *testing.T, k *KeyPairs) []byte {
				_, jwk := unrelatedJWK(t, false)
				return joseEncrypt(t, jwk, "RSA-OAEP", "A128GCM", nestedJWT)
			},
			wantErr: "or it was altered",
		},
		{
			name: "identity provider still encrypts to the active key",
			token: func(t *testing.T, k *KeyPairs) []byte {
				return joseEncrypt(t, jwkFromJWKS(t, k, KeyPairActive), "RSA-OAEP-256", "A256GCM", nestedJWT)
			},
			wantErr: "the pending pair is deleted",
		},
	})
}

// TestKeyPairsVerify is the same with go-jose as the identity provider,
// and tokens no identity provider makes.
func TestKeyPairsVerify(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{
			name: "encrypted to the pending key",
			token: func(t *testing.T, k *KeyPairs) []byte {
				pub := pairKey(t, k, KeyPairPending)
				return goJoseEncrypt(t, pub, jose.RSA_OAEP, jose.A256CBC_HS512, rsaThumbprint(pub), []byte(nestedJWT))
			},
		},
		{
			name: "pending key but RSA1_5",
			token: func(t *testing.T, k *KeyPairs) []byte {
				return goJoseEncrypt(t, pairKey(t, k, KeyPairPending), jose.RSA1_5, jose.A128GCM, "", []byte(nestedJWT))
			},
			wantErr: `"RSA1_5" is not accepted`,
		},
		{
			name: "encrypted to the active key",
			token: func(t *testing.T, k *KeyPairs) []byte {
				pub := pairKey(t, k, KeyPairActive)
				return goJoseEncrypt(t, pub, jose.RSA_OAEP_256, jose.A128GCM, rsaThumbprint(pub), []byte(nestedJWT))
			},
			wantErr: "token is encrypted to key",
		},
		{
			name:    "not a token, keep pending",
			token:   func(*testing.T, *KeyPairs) []byte { return []byte("hello") },
			keep:    true,
			wantErr: "1 dot-separated parts",
		},
		{
			name:    "not a token",
			token:   func(*testing.T, *KeyPairs) []byte { return nil },
			wantErr: "empty token",
		},
	})

	t.Run("no pending", func(t *testing.T) {
		k := newTestKeyPairs(t)
		mustGenerate(t, k, 2048)
		if _, err := k.Verify([]byte(nestedJWT), true); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no pending key pair") {
			t.Errorf("Verify without a pending pair: error %v, want ErrNotFound saying there is no pending pair", err)
		}
	})

	t.Run("names both keys", func(t *testing.T) {
		k, active, pending := rotatingKeyPairs(t)
		token := goJoseEncrypt(t, pairKey(t, k, KeyPairActive), jose.RSA_OAEP_256, jose.A128GCM, active.ID, []byte(nestedJWT))
		_, err := k.Verify(token, false)
		want := fmt.Sprintf("token is encrypted to key %s, not %s (the pending pair is deleted; active pair %s stays in use)", active.ID, pending.ID, active.ID)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Verify error = %v, want it to contain %q", err, want)
		}
	})
}

func TestKeyPairsDecryptActiveOnly(t *testing.T) {
	k, active, pending := rotatingKeyPairs(t)
	toActive := goJoseEncrypt(t, pairKey(t, k, KeyPairActive), jose.RSA_OAEP_256, jose.A128GCM, active.ID, []byte(nestedJWT))
	toPending := goJoseEncrypt(t, pairKey(t, k, KeyPairPending), jose.RSA_OAEP_256, jose.A128GCM, pending.ID, []byte(nestedJWT))

	if got, err := k.Decrypt(toActive); err != nil || string(got) != nestedJWT {
		t.Errorf("Decrypt(token to active) = %q, %v; want %q", got, err, nestedJWT)
	}
	_, err := k.Decrypt(toPending)
	if err == nil || !strings.Contains(err.Error(), "that is the pending key pair: verify it") {
		t.Errorf("Decrypt(token to pending) error = %v, want a refusal pointing at verification", err)
	}

	empty := newTestKeyPairs(t)
	if _, err := empty.Decrypt(toActive); !errors.Is(err, ErrNotFound) {
		t.Errorf("Decrypt without pairs: error %v, want ErrNotFound", err)
	}
}

// TestKeyPairsDecryptPending: the verification login reads the token
// with the pending pair before Verify, and that changes nothing.
func TestKeyPairsDecryptPending(t *testing.T) {
	k, active, pending := rotatingKeyPairs(t)
	toActive := goJoseEncrypt(t, pairKey(t, k, KeyPairActive), jose.RSA_OAEP_256, jose.A128GCM, active.ID, []byte(nestedJWT))
	toPending := goJoseEncrypt(t, pairKey(t, k, KeyPairPending), jose.RSA_OAEP_256, jose.A128GCM, pending.ID, []byte(nestedJWT))

	if got, err := k.DecryptPending(toPending); err != nil || string(got) != nestedJWT {
		t.Errorf("DecryptPending(token to pending) = %q, %v; want %q", got, err, nestedJWT)
	}
	if _, err := k.DecryptPending(toActive); err == nil || !strings.Contains(err.Error(), pending.ID) {
		t.Errorf("DecryptPending(token to active) error = %v, want a refusal naming the pending pair", err)
	}
	states := map[string]string{}
	for _, p := range k.List() {
		states[p.State] = p.ID
	}
	if states[KeyPairActive] != active.ID || states[KeyPairPending] != pending.ID {
		t.Errorf("after DecryptPending the pairs are %v, want them unchanged", states)
	}
	empty := newTestKeyPairs(t)
	if _, err := empty.DecryptPending(toPending); !errors.Is(err, ErrNotFound) {
		t.Errorf("DecryptPending without pairs: error %v, want ErrNotFound", err)
	}
}

func TestKeyPairsDelete(t *testing.T) {
	tests := []struct {
		name     string
		pending  bool // set up a pending pair beside the active one
		which    string
		wantErr  string
		wantNF   bool     // the error is ErrNotFound
		wantLeft []string // states left, in List order
	}{
		{name: "pending", pending: true, which: KeyPairPending, wantLeft: []string{KeyPairActive}},
		{name: "active while pending", pending: true, which: KeyPairActive, wantErr: "verify it (it then replaces the active pair) or delete the pending pair first", wantLeft: []string{KeyPairActive, KeyPairPending}},
		{name: "active alone", which: KeyPairActive},
		{name: "no pending", which: KeyPairPending, wantErr: "no pending key pair", wantNF: true, wantLeft: []string{KeyPairActive}},
		{name: "unknown", which: "old", wantErr: `use "active" or "pending"`, wantLeft: []string{KeyPairActive}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newTestKeyPairs(t)
			infos := map[string]KeyPairInfo{KeyPairActive: mustGenerate(t, k, 2048)}
			if tt.pending {
				infos[KeyPairPending] = mustGenerate(t, k, 2048)
			}
			err := k.Delete(tt.which)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Delete(%q): %v", tt.which, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Delete(%q) error = %v, want one containing %q", tt.which, err, tt.wantErr)
			case tt.wantNF && !errors.Is(err, ErrNotFound):
				t.Errorf("Delete(%q) error = %v, want ErrNotFound", tt.which, err)
			}
			var wantList []KeyPairInfo
			var kids []string
			for _, state := range tt.wantLeft {
				wantList = append(wantList, infos[state])
				kids = append(kids, infos[state].ID)
			}
			if diff := cmp.Diff(wantList, k.List()); diff != "" {
				t.Errorf("List after Delete (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(pairFiles(kids...), dirFiles(t, k.dir)); diff != "" {
				t.Errorf("files after Delete (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantList, openTestKeyPairs(t, k.dir).List()); diff != "" {
				t.Errorf("List after reopening (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("generate after deleting the active pair", func(t *testing.T) {
		k := newTestKeyPairs(t)
		mustGenerate(t, k, 2048)
		if err := k.Delete(KeyPairActive); err != nil {
			t.Fatal(err)
		}
		if info := mustGenerate(t, k, 2048); info.State != KeyPairActive {
			t.Errorf("Generate with no pairs left: state %q, want %q", info.State, KeyPairActive)
		}
	})
}

func TestKeyPairsReopen(t *testing.T) {
	k, active, _ := rotatingKeyPairs(t)
	token := goJoseEncrypt(t, pairKey(t, k, KeyPairActive), jose.RSA_OAEP, jose.A128CBC_HS256, active.ID, []byte(nestedJWT))
	exports := func(k *KeyPairs) map[string]string {
		out := map[string]string{}
		for _, which := range []string{KeyPairActive, KeyPairPending} {
			pub, err := k.PublicPEM(which)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := k.CertificatePEM(which)
			if err != nil {
				t.Fatal(err)
			}
			out[which+" public"], out[which+" certificate"] = string(pub), string(cert)
		}
		jwks, err := k.JWKS("")
		if err != nil {
			t.Fatal(err)
		}
		out["jwks"] = string(jwks)
		return out
	}

	again := openTestKeyPairs(t, k.dir)
	if diff := cmp.Diff(k.List(), again.List()); diff != "" {
		t.Errorf("List after reopening (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(exports(k), exports(again)); diff != "" {
		t.Errorf("exports after reopening (-before +after):\n%s", diff)
	}
	if got, err := again.Decrypt(token); err != nil || string(got) != nestedJWT {
		t.Errorf("Decrypt after reopening = %q, %v", got, err)
	}
}

func TestKeyPairsOpenLeftovers(t *testing.T) {
	k := newTestKeyPairs(t)
	active := mustGenerate(t, k, 2048)
	orphan := strings.Repeat("x", 43)
	for name, data := range map[string]string{
		".tmp-state.json-123456":      `{"version":1,"act`, // a write cut short
		".tmp-" + orphan + ".key-999": "-----BEGIN",
		orphan + ".key":               "an interrupted Delete",
		orphan + ".crt":               "an interrupted Delete",
		"notes.txt":                   "not ours to remove",
	} {
		if err := os.WriteFile(filepath.Join(k.dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	again := openTestKeyPairs(t, k.dir)
	if diff := cmp.Diff([]KeyPairInfo{active}, again.List()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	want := append(pairFiles(active.ID), "notes.txt")
	slices.Sort(want)
	if diff := cmp.Diff(want, dirFiles(t, k.dir)); diff != "" {
		t.Errorf("files after reopening (-want +got):\n%s", diff)
	}
}

func TestKeyPairsOpenErrors(t *testing.T) {
	writeState := func(s string) func(*testing.T, string, KeyPairInfo, KeyPairInfo) {
		return func(t *testing.T, dir string, _, _ KeyPairInfo) {
			if err := os.WriteFile(filepath.Join(dir, oidcStateFile), []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name    string
		break_  func(t *testing.T, dir string, active, pending KeyPairInfo)
		wantErr string
	}{
		{"state not JSON", writeState("{"), "state.json"},
		{"state unknown field", writeState(`{"version":1,"actve":"x"}`), `unknown field "actve"`},
		{"state trailing data", writeState(`{"version":1} {}`), "trailing data"},
		{"state no version", writeState(`{}`), "version 0"},
		{"state newer version", writeState(`{"version":2}`), "version 2"},
		{"state kid escapes", writeState(`{"version":1,"active":"../../etc/passwd"}`), "is not a key ID"},
		{"state pending alone", writeState(`{"version":1,"pending":"` + strings.Repeat("y", 43) + `"}`), "pending key pair without an active one"},
		{"active key missing", func(t *testing.T, dir string, active, _ KeyPairInfo) {
			os.Remove(filepath.Join(dir, active.ID+".key"))
		}, "no such file"},
		{"certificate missing", func(t *testing.T, dir string, _, pending KeyPairInfo) {
			os.Remove(filepath.Join(dir, pending.ID+".crt"))
		}, "no such file"},
		{"key file holds another key", func(t *testing.T, dir string, active, pending KeyPairInfo) {
			copyFile(t, filepath.Join(dir, pending.ID+".key"), filepath.Join(dir, active.ID+".key"))
		}, "holds key " + "PENDING"},
		{"certificate for another key", func(t *testing.T, dir string, active, pending KeyPairInfo) {
			copyFile(t, filepath.Join(dir, pending.ID+".crt"), filepath.Join(dir, active.ID+".crt"))
		}, "certificate is not for key"},
		{"key not PEM", func(t *testing.T, dir string, active, _ KeyPairInfo) {
			os.WriteFile(filepath.Join(dir, active.ID+".key"), []byte("junk"), 0o600)
		}, `no "PRIVATE KEY" PEM block`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, active, pending := rotatingKeyPairs(t)
			tt.break_(t, k.dir, active, pending)
			_, err := OpenKeyPairs(k.dir, slog.New(slog.NewTextHandler(t.Output(), nil)))
			want := strings.ReplaceAll(tt.wantErr, "PENDING", pending.ID)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("OpenKeyPairs error = %v, want one containing %q", err, want)
			}
		})
	}

	t.Run("no logger", func(t *testing.T) {
		if _, err := OpenKeyPairs(t.TempDir(), nil); err == nil {
			t.Errorf("OpenKeyPairs with a nil logger succeeded")
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestKeyPairsPermissions(t *testing.T) {
	k, active, pending := rotatingKeyPairs(t)
	want := map[string]os.FileMode{
		".":                 0o700 | os.ModeDir,
		oidcStateFile:       0o600,
		active.ID + ".key":  0o600,
		pending.ID + ".key": 0o600,
		active.ID + ".crt":  0o644,
		pending.ID + ".crt": 0o644,
	}
	got := map[string]os.FileMode{}
	for name := range want {
		fi, err := os.Stat(filepath.Join(k.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got[name] = fi.Mode()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("modes (-want +got):\n%s", diff)
	}

	t.Run("open directory tightened", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "oidc-keys")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		openTestKeyPairs(t, dir)
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("directory mode after OpenKeyPairs = %v, want 0700", fi.Mode().Perm())
		}
	})
}

// TestKeyPairsConcurrent runs reads during rotations, for the race
// detector.
func TestKeyPairsConcurrent(t *testing.T) {
	k := newTestKeyPairs(t)
	mustGenerate(t, k, 2048)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				k.List()
				if _, err := k.JWKS(""); err != nil {
					t.Errorf("JWKS: %v", err)
				}
				k.Decrypt([]byte(nestedJWT)) // refused; exercises the read path
			}
		})
	}
	for range 3 {
		info := mustGenerate(t, k, 2048)
		pub := pairKey(t, k, KeyPairPending)
		if _, err := k.Verify(goJoseEncrypt(t, pub, jose.RSA_OAEP_256, jose.A128GCM, info.ID, []byte(nestedJWT)), false); err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	if got := k.List(); len(got) != 1 {
		t.Errorf("List after rotations = %v, want one active pair", got)
	}
}
