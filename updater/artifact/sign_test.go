package artifact

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParseKeys(t *testing.T) {
	keys := testKeys()
	ecKey := keys.ec.(*ecdsa.PrivateKey)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	ecPKCS8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	rsaPKCS8, _ := x509.MarshalPKCS8PrivateKey(keys.rsa)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	ecParams := pemOf("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})

	privTests := []struct {
		name    string
		pem     []byte
		wantErr string
	}{
		{"rsa pkcs1", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(keys.rsa.(*rsa.PrivateKey))), ""},
		{"ec sec1", pemOf("EC PRIVATE KEY", sec1), ""},
		{"ec sec1 after EC PARAMETERS", append(ecParams, pemOf("EC PRIVATE KEY", sec1)...), ""},
		{"ec pkcs8", pemOf("PRIVATE KEY", ecPKCS8), ""},
		{"rsa pkcs8", pemOf("PRIVATE KEY", rsaPKCS8), ""},
		{"p-384", pemOf("PRIVATE KEY", p384DER), "P-384"},
		{"ed25519", pemOf("PRIVATE KEY", edDER), "unsupported key type"},
		{"certificate", pemOf("CERTIFICATE", []byte{1}), "found only CERTIFICATE"},
		{"not pem", []byte("hello"), "no PEM private key"},
	}
	for _, tt := range privTests {
		t.Run("private/"+tt.name, func(t *testing.T) {
			_, err := ParsePrivateKeyPEM(tt.pem)
			checkErr(t, err, tt.wantErr)
		})
	}

	pkix := func(k crypto.PublicKey) []byte { der, _ := x509.MarshalPKIXPublicKey(k); return der }
	pubTests := []struct {
		name    string
		pem     []byte
		wantErr string
	}{
		{"rsa pkix", pemOf("PUBLIC KEY", pkix(keys.rsa.Public())), ""},
		{"rsa pkcs1", pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(keys.rsa.Public().(*rsa.PublicKey))), ""},
		{"ec pkix", pemOf("PUBLIC KEY", pkix(keys.ec.Public())), ""},
		{"p-384", pemOf("PUBLIC KEY", pkix(p384.Public())), "P-384"},
		{"ed25519", pemOf("PUBLIC KEY", pkix(edKey.Public())), "unsupported key type"},
		{"private key given", pemOf("EC PRIVATE KEY", sec1), "want PUBLIC KEY"},
		{"empty", nil, "no PEM block"},
	}
	for _, tt := range pubTests {
		t.Run("public/"+tt.name, func(t *testing.T) {
			_, err := ParsePublicKeyPEM(tt.pem)
			checkErr(t, err, tt.wantErr)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("error = %v, want none", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want one containing %q", err, want)
	}
}

// TestSignVerify: signatures verify with the right key only, ECDSA is
// written as raw r‖s, and DER ECDSA signatures are accepted too.
func TestSignVerify(t *testing.T) {
	keys := testKeys()
	manifest := []byte(strings.Repeat("0", 64) + "  version\n")
	digest := sha256.Sum256(manifest)
	der, err := keys.ec.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	derSig := []byte(base64.StdEncoding.EncodeToString(der))
	rsaSig, _ := Sign(keys.rsa, manifest)
	ecSig, _ := Sign(keys.ec, manifest)
	if raw, _ := base64.StdEncoding.DecodeString(string(ecSig)); len(raw) != 64 {
		t.Errorf("ECDSA signature is %d bytes, want raw r||s of 64", len(raw))
	}
	if raw, _ := base64.StdEncoding.DecodeString(string(rsaSig)); len(raw) != 256 {
		t.Errorf("RSA-2048 signature is %d bytes, want 256", len(raw))
	}
	pub := func(ks ...crypto.Signer) []crypto.PublicKey {
		var out []crypto.PublicKey
		for _, k := range ks {
			out = append(out, k.Public())
		}
		return out
	}
	tests := []struct {
		name      string
		sig       []byte
		manifest  []byte
		keys      []crypto.PublicKey
		wantIndex int // -1: must fail
	}{
		{"rsa", rsaSig, manifest, pub(keys.rsa), 0},
		{"ecdsa raw", ecSig, manifest, pub(keys.ec), 0},
		{"ecdsa DER", derSig, manifest, pub(keys.ec), 0},
		{"trailing newline", append(ecSig, '\n'), manifest, pub(keys.ec), 0},
		{"second of several keys", ecSig, manifest, pub(keys.rsa, keys.ec2, keys.ec), 2},
		{"wrong rsa key", rsaSig, manifest, pub(keys.rsa2), -1},
		{"wrong ec key", ecSig, manifest, pub(keys.ec2, keys.rsa), -1},
		{"tampered manifest", ecSig, append(manifest, '\n'), pub(keys.ec), -1},
		{"no keys", ecSig, manifest, nil, -1},
		{"not base64", []byte("!!"), manifest, pub(keys.ec), -1},
		{"empty", nil, manifest, pub(keys.ec), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i, err := VerifySignature(tt.manifest, tt.sig, tt.keys)
			if tt.wantIndex < 0 {
				if err == nil || !errors.Is(err, ErrSignature) {
					t.Fatalf("error = %v, want ErrSignature", err)
				}
				return
			}
			if err != nil || i != tt.wantIndex {
				t.Fatalf("VerifySignature = %d, %v; want %d", i, err, tt.wantIndex)
			}
		})
	}
}
