package keystore

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/edgefort/edgefort/internal/peertest"
)

// testRSAKey is one 2048-bit key shared by the JWE tests that need a key
// but not a KeyPairs.
var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return key
})

// goJoseEncrypt encrypts payload to key with go-jose as a compact JWE, kid
// in the header unless empty.
func goJoseEncrypt(t testing.TB, key any, alg jose.KeyAlgorithm, enc jose.ContentEncryption, kid string, payload []byte) []byte {
	t.Helper()
	opts := (&jose.EncrypterOptions{}).WithContentType("JWT")
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: key, KeyID: kid}, opts)
	if err != nil {
		t.Fatalf("go-jose: new encrypter %s/%s: %v", alg, enc, err)
	}
	obj, err := e.Encrypt(payload)
	if err != nil {
		t.Fatalf("go-jose: encrypt %s/%s: %v", alg, enc, err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatalf("go-jose: serialize: %v", err)
	}
	return []byte(s)
}

// craftJWE builds a compact JWE with the given protected header and dummy
// other parts, for headers no library will produce.
func craftJWE(header string) []byte {
	return []byte(b64([]byte(header)) + ".AAAA.AAAA.AAAA.AAAA")
}

// nestedJWT stands in for the signed ID token an identity provider
// encrypts; decryptJWE returns it untouched.
const nestedJWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"

var allowedJWEPairs = func() (out [][2]string) {
	for _, alg := range jweKeyAlgorithms {
		for _, enc := range jweContentEncryptions {
			out = append(out, [2]string{string(alg), string(enc)})
		}
	}
	return out
}()

func TestJWEDecryptAllowedAlgorithms(t *testing.T) {
	key := testRSAKey()
	kid := rsaThumbprint(&key.PublicKey)
	for _, pair := range allowedJWEPairs {
		for _, withKID := range []bool{true, false} {
			name := pair[0] + "/" + pair[1]
			if !withKID {
				name += "/no-kid"
			}
			t.Run(name, func(t *testing.T) {
				hdrKID := ""
				if withKID {
					hdrKID = kid
				}
				token := goJoseEncrypt(t, &key.PublicKey, jose.KeyAlgorithm(pair[0]), jose.ContentEncryption(pair[1]), hdrKID, []byte(nestedJWT))
				got, err := decryptJWE(append(token, '\n'), key)
				if err != nil {
					t.Fatalf("decryptJWE: %v", err)
				}
				if string(got) != nestedJWT {
					t.Errorf("plaintext = %q, want %q", got, nestedJWT)
				}
			})
		}
	}
}

func TestJWEDecryptRejects(t *testing.T) {
	key := testRSAKey()
	ours := rsaThumbprint(&key.PublicKey)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{7}, 16)
	valid := string(goJoseEncrypt(t, &key.PublicKey, jose.RSA_OAEP_256, jose.A256GCM, "", []byte(nestedJWT)))
	parts := strings.Split(valid, ".")
	tampered := strings.Join([]string{parts[0], parts[1], parts[2], flipFirst(parts[3]), parts[4]}, ".")

	jsonSer := func() []byte {
		e, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: &key.PublicKey}, nil)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := e.Encrypt([]byte(nestedJWT))
		if err != nil {
			t.Fatal(err)
		}
		return []byte(obj.FullSerialize())
	}

	tests := []struct {
		name  string
		token []byte
		want  string // in the error
	}{
		{"RSA1_5", goJoseEncrypt(t, &key.PublicKey, jose.RSA1_5, jose.A128CBC_HS256, "", []byte(nestedJWT)), `key algorithm "RSA1_5" is not accepted`},
		{"dir", goJoseEncrypt(t, secret, jose.DIRECT, jose.A128GCM, "", []byte(nestedJWT)), `key algorithm "dir" is not accepted`},
		{"A128KW", goJoseEncrypt(t, secret, jose.A128KW, jose.A128GCM, "", []byte(nestedJWT)), `key algorithm "A128KW" is not accepted`},
		{"ECDH-ES", goJoseEncrypt(t, &ec.PublicKey, jose.ECDH_ES, jose.A128GCM, "", []byte(nestedJWT)), `key algorithm "ECDH-ES" is not accepted`},
		{"PBES2", craftJWE(`{"alg":"PBES2-HS256+A128KW","enc":"A128GCM","p2s":"AAAA","p2c":1000000}`), `key algorithm "PBES2-HS256+A128KW" is not accepted`},
		{"none", craftJWE(`{"alg":"none","enc":"A128GCM"}`), `key algorithm "none" is not accepted`},
		{"RSA-OAEP-384", craftJWE(`{"alg":"RSA-OAEP-384","enc":"A128GCM"}`), `key algorithm "RSA-OAEP-384" is not accepted`},
		{"no alg", craftJWE(`{"enc":"A128GCM"}`), `no "alg"`},
		{"A192GCM", goJoseEncrypt(t, &key.PublicKey, jose.RSA_OAEP, jose.A192GCM, "", []byte(nestedJWT)), `content encryption "A192GCM" is not accepted`},
		{"A192CBC-HS384", goJoseEncrypt(t, &key.PublicKey, jose.RSA_OAEP_256, jose.A192CBC_HS384, "", []byte(nestedJWT)), `content encryption "A192CBC-HS384" is not accepted`},
		{"no enc", craftJWE(`{"alg":"RSA-OAEP"}`), `no "enc"`},
		{"other kid", goJoseEncrypt(t, &other.PublicKey, jose.RSA_OAEP_256, jose.A256GCM, rsaThumbprint(&other.PublicKey), []byte(nestedJWT)), "token is encrypted to key " + rsaThumbprint(&other.PublicKey) + ", not " + ours},
		{"other key, no kid", goJoseEncrypt(t, &other.PublicKey, jose.RSA_OAEP_256, jose.A256GCM, "", []byte(nestedJWT)), "not encrypted to key " + ours + ", or it was altered"},
		{"tampered ciphertext", []byte(tampered), "or it was altered"},
		{"JSON serialization", jsonSer(), "JSON serialization is not accepted"},
		{"signed JWT", []byte(nestedJWT), "signed JWT (JWS), not an encrypted one"},
		{"four parts", []byte("a.b.c.d"), "4 dot-separated parts"},
		{"empty", []byte("  \n"), "empty token"},
		{"header not base64", []byte("!!.a.b.c.d"), "JWE header"},
		{"header not JSON", []byte(b64([]byte("nope")) + ".a.b.c.d"), "JWE header"},
		{"crit header", craftJWE(`{"alg":"RSA-OAEP","enc":"A128GCM","crit":["exp"],"exp":1}`), "critical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decryptJWE(tt.token, key)
			if err == nil {
				t.Fatalf("decryptJWE = %q, want an error containing %q", got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("decryptJWE error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func flipFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func TestJWEThumbprintMatchesGoJose(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	oddE := *small
	oddE.PublicKey.E = 3 // exponent encoding: one byte, not three
	for _, tt := range []struct {
		name string
		pub  *rsa.PublicKey
	}{
		{"shared key", &testRSAKey().PublicKey},
		{"e=65537", &small.PublicKey},
		{"e=3", &oddE.PublicKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := (&jose.JSONWebKey{Key: tt.pub}).Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := rsaThumbprint(tt.pub), base64.RawURLEncoding.EncodeToString(tp); got != want {
				t.Errorf("rsaThumbprint = %s, go-jose Thumbprint = %s", got, want)
			}
		})
	}
}

// TestJWEJosePeer has tokens encrypted by an independent implementation,
// the npm package jose, to the key as exported in our JWKS, decrypted for
// every accepted algorithm pair.
func TestJWEJosePeer(t *testing.T) {
	requirePeer(t, "node")
	requirePeer(t, "npm")
	k := newTestKeyPairs(t)
	if _, err := k.Generate(2048); err != nil {
		t.Fatal(err)
	}
	jwk := jwkFromJWKS(t, k, KeyPairActive)
	for _, pair := range allowedJWEPairs {
		t.Run(pair[0]+"/"+pair[1], func(t *testing.T) {
			token := joseEncrypt(t, jwk, pair[0], pair[1], nestedJWT)
			got, err := k.Decrypt(token)
			if err != nil {
				t.Fatalf("Decrypt(jose %s/%s): %v", pair[0], pair[1], err)
			}
			if string(got) != nestedJWT {
				t.Errorf("plaintext = %q, want %q", got, nestedJWT)
			}
		})
	}
}

// FuzzDecryptJWE feeds decryptJWE arbitrary tokens: it must refuse or
// decrypt, never panic.
func FuzzDecryptJWE(f *testing.F) {
	key := testRSAKey()
	kid := rsaThumbprint(&key.PublicKey)
	for _, pair := range allowedJWEPairs[:2] {
		f.Add(goJoseEncrypt(f, &key.PublicKey, jose.KeyAlgorithm(pair[0]), jose.ContentEncryption(pair[1]), kid, []byte(nestedJWT)))
	}
	f.Add(craftJWE(`{"alg":"RSA-OAEP","enc":"A128GCM","zip":"DEF"}`))
	f.Add(craftJWE(`{"alg":"none"}`))
	f.Add([]byte(nestedJWT))
	f.Add([]byte("...."))
	f.Add([]byte(`{"protected":"e30"}`))
	f.Fuzz(func(t *testing.T, token []byte) {
		plain, err := decryptJWE(token, key)
		if err == nil && plain == nil {
			t.Errorf("decryptJWE(%q) returned neither plaintext nor error", token)
		}
	})
}

// jwkFromJWKS returns the single key of k's JWKS export for which, as an
// identity provider would read it.
func jwkFromJWKS(t *testing.T, k *KeyPairs, which string) []byte {
	t.Helper()
	data, err := k.JWKS(which)
	if err != nil {
		t.Fatalf("JWKS(%q): %v", which, err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatalf("JWKS(%q): %v", which, err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS(%q) has %d keys, want 1", which, len(set.Keys))
	}
	return set.Keys[0]
}

// joseEncrypt has the npm jose library (peertest.Jose, encrypt.mjs)
// encrypt payload to jwk (a public JWK; its kid, if any, goes into the
// header) as a compact JWE.
func joseEncrypt(t *testing.T, jwk []byte, alg, enc, payload string) []byte {
	t.Helper()
	node, joseDir := peertest.Jose(t)
	jwkFile := filepath.Join(t.TempDir(), "key.jwk")
	if err := os.WriteFile(jwkFile, jwk, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "encrypt.mjs", jwkFile, alg, enc)
	cmd.Dir = joseDir
	cmd.Stdin = strings.NewReader(payload)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node encrypt.mjs %s %s: %v\n%s", alg, enc, err, stderr.Bytes())
	}
	return bytes.TrimSpace(out)
}
