package keystore

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/edgefort/edgefort/internal/peertest"
	"github.com/edgefort/edgefort/internal/pemkey"
)

const testPassphrase = "secret"

func TestParseKeyPEM(t *testing.T) {
	rsaKey := newTestKey(t, x509.RSA).(*rsa.PrivateKey)
	ecKey := newTestKey(t, x509.ECDSA).(*ecdsa.PrivateKey)
	edKey := newTestKey(t, x509.Ed25519)
	p384 := mustECDSA(t, elliptic.P384())
	p521 := mustECDSA(t, elliptic.P521())
	p224 := mustECDSA(t, elliptic.P224())
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := testLeaf(t, "combined")

	tests := []struct {
		name    string
		data    []byte
		pass    string
		want    crypto.Signer
		wantErr string // substring; "" for success
		wantIs  error
	}{
		{name: "RSA PKCS#1", data: pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), want: rsaKey},
		{name: "RSA PKCS#8", data: pemBlock("PRIVATE KEY", mustPKCS8(t, rsaKey)), want: rsaKey},
		{name: "ECDSA P-256 SEC1", data: pemBlock("EC PRIVATE KEY", mustSEC1(t, ecKey)), want: ecKey},
		{name: "ECDSA P-256 PKCS#8", data: pemBlock("PRIVATE KEY", mustPKCS8(t, ecKey)), want: ecKey},
		{name: "ECDSA P-384 SEC1", data: pemBlock("EC PRIVATE KEY", mustSEC1(t, p384)), want: p384},
		{name: "ECDSA P-521 PKCS#8", data: pemBlock("PRIVATE KEY", mustPKCS8(t, p521)), want: p521},
		{name: "Ed25519 PKCS#8", data: pemBlock("PRIVATE KEY", mustPKCS8(t, edKey)), want: edKey},
		{name: "RSA PKCS#1 DER", data: x509.MarshalPKCS1PrivateKey(rsaKey), want: rsaKey},
		{name: "ECDSA SEC1 DER", data: mustSEC1(t, ecKey), want: ecKey},
		{name: "Ed25519 PKCS#8 DER", data: mustPKCS8(t, edKey), want: edKey},
		{name: "PKCS#1 labelled PRIVATE KEY", data: pemBlock("PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), want: rsaKey},
		{name: "key after certificate", data: cat(cert.CertPEM, cert.KeyPEM), want: cert.Key},
		{name: "key before certificate", data: cat(cert.KeyPEM, cert.CertPEM), want: cert.Key},
		{
			name: "EC PARAMETERS block first (openssl ecparam -genkey)",
			data: cat(pemBlock("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}), pemBlock("EC PRIVATE KEY", mustSEC1(t, ecKey))),
			want: ecKey,
		},
		{name: "text around the block", data: cat([]byte("Private-Key: (256 bit)\nsome dump\n"), cert.KeyPEM, []byte("trailer\n")), want: cert.Key},
		{name: "passphrase given for a plain key", data: cert.KeyPEM, pass: testPassphrase, want: cert.Key},

		{name: "empty", data: nil, wantErr: pemkey.ErrNoKey.Error(), wantIs: pemkey.ErrNoKey},
		{name: "garbage", data: []byte("hello, world\n"), wantErr: pemkey.ErrNoKey.Error(), wantIs: pemkey.ErrNoKey},
		{name: "truncated PEM", data: cert.KeyPEM[:40], wantErr: pemkey.ErrNoKey.Error(), wantIs: pemkey.ErrNoKey},
		{name: "certificate only", data: cert.CertPEM, wantErr: "; found only CERTIFICATE", wantIs: pemkey.ErrNoKey},
		{name: "two keys", data: cat(cert.KeyPEM, pemBlock("EC PRIVATE KEY", mustSEC1(t, ecKey))), wantErr: "found 2 private keys: give exactly one"},
		{name: "RSA-1024 PKCS#1", data: pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024)), wantErr: "RSA key of 1024 bits is too short: use at least 2048"},
		{name: "RSA-1024 PKCS#8", data: pemBlock("PRIVATE KEY", mustPKCS8(t, rsa1024)), wantErr: "RSA key of 1024 bits is too short"},
		{name: "RSA-1024 DER", data: x509.MarshalPKCS1PrivateKey(rsa1024), wantErr: "RSA key of 1024 bits is too short"},
		{name: "ECDSA P-224", data: pemBlock("EC PRIVATE KEY", mustSEC1(t, p224)), wantErr: "unsupported ECDSA curve P-224"},
		{name: "X25519", data: pemBlock("PRIVATE KEY", mustPKCS8(t, x25519)), wantErr: "X25519 key cannot sign"},
		{name: "OpenSSH key", data: pemBlock("OPENSSH PRIVATE KEY", []byte("openssh-key-v1\x00")), wantErr: "ssh-keygen -p -m PKCS8"},
		{name: "DSA key", data: pemBlock("DSA PRIVATE KEY", []byte{0x30, 0x00}), wantErr: `unsupported private key block "DSA PRIVATE KEY"`},
		{name: "corrupt PKCS#8", data: pemBlock("PRIVATE KEY", []byte("not DER")), wantErr: "parse PRIVATE KEY block: "},
		{name: "corrupt encrypted PKCS#8", data: pemBlock("ENCRYPTED PRIVATE KEY", []byte("not DER")), pass: testPassphrase, wantErr: "parse encrypted private key: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pemkey.Parse(tt.data, []byte(tt.pass))
			checkKeyResult(t, got, err, tt.want, tt.wantErr, tt.wantIs)
		})
	}
}

// TestParseKeyPEMEncrypted decrypts keys encrypted by openssl (and, where
// no peer is needed, by Go) with the right, a wrong and no passphrase.
func TestParseKeyPEMEncrypted(t *testing.T) {
	keys := map[string]crypto.Signer{
		"RSA":     newTestKey(t, x509.RSA),
		"ECDSA":   newTestKey(t, x509.ECDSA),
		"Ed25519": newTestKey(t, x509.Ed25519),
	}
	openssl := func(args ...string) func(t *testing.T, key crypto.Signer) []byte {
		return func(t *testing.T, key crypto.Signer) []byte {
			in := writeTemp(t, "key.pem", pemBlock("PRIVATE KEY", mustPKCS8(t, key)))
			return runOpenSSL(t, append(args, "-in", in, "-passout", "pass:"+testPassphrase)...)
		}
	}
	variants := []struct {
		name  string
		keys  []string // key types the format holds
		make  func(t *testing.T, key crypto.Signer) []byte
		block string // expected PEM type; "" for DER
	}{
		{name: "PKCS#8 AES-256 openssl pkey", keys: []string{"RSA", "ECDSA", "Ed25519"}, make: openssl("pkey", "-aes256"), block: "ENCRYPTED PRIVATE KEY"},
		{name: "PKCS#8 scrypt openssl pkcs8", keys: []string{"RSA", "ECDSA", "Ed25519"}, make: openssl("pkcs8", "-topk8", "-scrypt"), block: "ENCRYPTED PRIVATE KEY"},
		{name: "PKCS#8 3DES HMAC-SHA1", keys: []string{"ECDSA"}, make: openssl("pkcs8", "-topk8", "-v2", "des3", "-v2prf", "hmacWithSHA1"), block: "ENCRYPTED PRIVATE KEY"},
		{name: "PKCS#8 AES-128 HMAC-SHA512", keys: []string{"ECDSA"}, make: openssl("pkcs8", "-topk8", "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512"), block: "ENCRYPTED PRIVATE KEY"},
		{name: "PKCS#8 DER", keys: []string{"ECDSA", "Ed25519"}, make: openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-outform", "DER")},
		{name: "legacy PEM openssl rsa -traditional", keys: []string{"RSA"}, make: openssl("rsa", "-aes256", "-traditional"), block: "RSA PRIVATE KEY"},
		{name: "legacy PEM openssl ec", keys: []string{"ECDSA"}, make: openssl("ec", "-aes256"), block: "EC PRIVATE KEY"},
		{name: "PKCS#8 AES-256 Go", keys: []string{"RSA", "ECDSA", "Ed25519"}, make: func(t *testing.T, key crypto.Signer) []byte {
			return encryptPKCS8(t, key, testPassphrase)
		}, block: "ENCRYPTED PRIVATE KEY"},
		{name: "legacy PEM Go", keys: []string{"RSA", "ECDSA"}, make: func(t *testing.T, key crypto.Signer) []byte {
			return legacyEncrypt(t, key)
		}, block: "RSA PRIVATE KEY|EC PRIVATE KEY"},
	}
	passes := []struct {
		name    string
		pass    string
		wantErr error
	}{
		{"right passphrase", testPassphrase, nil},
		{"wrong passphrase", "wrong", pemkey.ErrWrongPassphrase},
		{"no passphrase", "", pemkey.ErrNeedPassphrase},
	}
	for _, v := range variants {
		for _, kt := range v.keys {
			t.Run(v.name+"/"+kt, func(t *testing.T) {
				key := keys[kt]
				data := v.make(t, key)
				if b, _ := pem.Decode(data); v.block != "" && (b == nil || !strings.Contains(v.block, b.Type)) {
					t.Fatalf("test data is not a %s block:\n%s", v.block, data)
				}
				for _, p := range passes {
					t.Run(p.name, func(t *testing.T) {
						got, err := pemkey.Parse(data, []byte(p.pass))
						wantErr := ""
						if p.wantErr != nil {
							wantErr = p.wantErr.Error()
						}
						checkKeyResult(t, got, err, key, wantErr, p.wantErr)
					})
				}
			})
		}
	}
}

func TestParseKeyPEMEncryptedUnsupported(t *testing.T) {
	key := newTestKey(t, x509.ECDSA)
	t.Run("PBES1 openssl pkcs8 -v1", func(t *testing.T) {
		in := writeTemp(t, "key.pem", pemBlock("PRIVATE KEY", mustPKCS8(t, key)))
		data := runOpenSSL(t, "pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES", "-in", in, "-passout", "pass:"+testPassphrase)
		_, err := pemkey.Parse(data, []byte(testPassphrase))
		checkErrContains(t, err, "only PBES2 is supported; re-encrypt the key with: openssl pkcs8 -topk8 -v2 aes-256-cbc")
	})

	// Crafted EncryptedPrivateKeyInfo structures: each must fail before,
	// or instead of, an expensive or panicking decryption.
	salt, iv := make([]byte, 8), make([]byte, 16)
	aes256 := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	hmacSHA256 := pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}, Parameters: asn1.NullRawValue}
	pbkdf2Alg := func(p pbkdf2Params) pkix.AlgorithmIdentifier { return algID(t, oidPBKDF2, p) }
	aesScheme := algID(t, aes256, iv)
	tests := []struct {
		name    string
		alg     pkix.AlgorithmIdentifier
		data    []byte
		wantErr string
	}{
		{
			name:    "PBKDF2 iterations over the limit",
			alg:     algID(t, oidPBES2, pbes2Params{KDF: pbkdf2Alg(pbkdf2Params{Salt: salt, Iterations: 1 << 40, PRF: hmacSHA256}), Scheme: aesScheme}),
			data:    make([]byte, 32),
			wantErr: "decrypt private key: PBKDF2 iteration count 1099511627776 is outside 1 to 5000000",
		},
		{
			name:    "PBKDF2 zero iterations",
			alg:     algID(t, oidPBES2, pbes2Params{KDF: pbkdf2Alg(pbkdf2Params{Salt: salt, Iterations: 0}), Scheme: aesScheme}),
			data:    make([]byte, 32),
			wantErr: "PBKDF2 iteration count 0 is outside",
		},
		{
			name:    "PBKDF2 unknown hash",
			alg:     algID(t, oidPBES2, pbes2Params{KDF: pbkdf2Alg(pbkdf2Params{Salt: salt, Iterations: 1, PRF: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}}}), Scheme: aesScheme}),
			data:    make([]byte, 32),
			wantErr: "unsupported PBKDF2 hash 1.2.840.113549.2.5",
		},
		{
			name:    "PBKDF2 key length not the cipher's",
			alg:     algID(t, oidPBES2, pbes2Params{KDF: pbkdf2Alg(pbkdf2Params{Salt: salt, Iterations: 1, KeyLength: 16}), Scheme: aesScheme}),
			data:    make([]byte, 32),
			wantErr: "PBKDF2 key length 16 does not fit the cipher's 32",
		},
		{
			name:    "scrypt memory over the limit",
			alg:     algID(t, oidPBES2, pbes2Params{KDF: algID(t, oidScrypt, scryptParams{Salt: salt, N: 1 << 20, R: 8, P: 1}), Scheme: aesScheme}),
			data:    make([]byte, 32),
			wantErr: "scrypt parameters N=1048576 r=8 p=1 are outside the limits",
		},
		{
			name:    "unknown key derivation",
			alg:     algID(t, oidPBES2, pbes2Params{KDF: algID(t, asn1.ObjectIdentifier{1, 2, 3}, salt), Scheme: aesScheme}),
			data:    make([]byte, 32),
			wantErr: "unsupported key derivation 1.2.3",
		},
		{
			name:    "AES-GCM",
			alg:     algID(t, oidPBES2, pbes2Params{KDF: pbkdf2Alg(pbkdf2Params{Salt: salt, Iterations: 1}), Scheme: algID(t, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}, iv)}),
			data:    make([]byte, 32),
			wantErr: "unsupported cipher 2.16.840.1.101.3.4.1.46",
		},
		{
			name:    "short IV",
			alg:     algID(t, oidPBES2, pbes2Params{KDF: pbkdf2Alg(pbkdf2Params{Salt: salt, Iterations: 1}), Scheme: algID(t, aes256, iv[:3])}),
			data:    make([]byte, 32),
			wantErr: "malformed encrypted data",
		},
		{
			name:    "ciphertext not whole blocks",
			alg:     algID(t, oidPBES2, pbes2Params{KDF: pbkdf2Alg(pbkdf2Params{Salt: salt, Iterations: 1}), Scheme: aesScheme}),
			data:    make([]byte, 17),
			wantErr: "malformed encrypted data",
		},
		{
			name:    "empty ciphertext",
			alg:     algID(t, oidPBES2, pbes2Params{KDF: pbkdf2Alg(pbkdf2Params{Salt: salt, Iterations: 1}), Scheme: aesScheme}),
			wantErr: "malformed encrypted data",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := asn1.Marshal(encryptedPrivateKeyInfo{Algorithm: tt.alg, Data: tt.data})
			if err != nil {
				t.Fatal(err)
			}
			_, err = pemkey.Parse(pemBlock("ENCRYPTED PRIVATE KEY", der), []byte(testPassphrase))
			checkErrContains(t, err, tt.wantErr)
		})
	}
}

func TestParseCertsPEM(t *testing.T) {
	root := testCA(t, "root", withRSA())
	inter := root.issue(t, "intermediate", withCA())
	leaf := inter.issue(t, "leaf.example")
	bad := pemBlock("CERTIFICATE", []byte("not DER"))

	tests := []struct {
		name    string
		data    []byte
		want    []string // CNs in order
		wantErr string
		wantIs  error
	}{
		{name: "one", data: leaf.CertPEM, want: []string{"leaf.example"}},
		{name: "chain in file order", data: cat(root.CertPEM, leaf.CertPEM, inter.CertPEM), want: []string{"root", "leaf.example", "intermediate"}},
		{name: "key and certificate", data: cat(leaf.KeyPEM, leaf.CertPEM, inter.CertPEM), want: []string{"leaf.example", "intermediate"}},
		{name: "other blocks skipped", data: cat(pemBlock("X509 CRL", []byte{1}), leaf.CertPEM, pemBlock("EC PARAMETERS", []byte{2})), want: []string{"leaf.example"}},
		{name: "text around blocks", data: cat([]byte("subject=CN=leaf.example\n"), leaf.CertPEM, []byte("\n")), want: []string{"leaf.example"}},
		{name: "DER", data: leaf.Cert.Raw, want: []string{"leaf.example"}},
		{name: "empty", data: nil, wantErr: "no PEM certificate found", wantIs: errNoCert},
		{name: "garbage", data: []byte("hello"), wantErr: "no PEM certificate found", wantIs: errNoCert},
		{name: "key only", data: leaf.KeyPEM, wantErr: "no PEM certificate found; found only PRIVATE KEY", wantIs: errNoCert},
		{name: "corrupt first", data: cat(bad, leaf.CertPEM), wantErr: "certificate 1: x509: "},
		{name: "corrupt second", data: cat(leaf.CertPEM, bad, root.CertPEM), wantErr: "certificate 2: x509: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCertsPEM(tt.data)
			if tt.wantErr != "" {
				checkErrContains(t, err, tt.wantErr)
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("error %q is not %q", err, tt.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCertsPEM: %v", err)
			}
			if diff := cmp.Diff(tt.want, commonNames(got)); diff != "" {
				t.Errorf("certificates (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParsePKCS12(t *testing.T) {
	root := testCA(t, "root", withRSA())
	inter := root.issue(t, "intermediate", withCA())
	leaf := inter.issue(t, "leaf.example", withRSA())
	edLeaf := inter.issue(t, "ed.example", withEd25519())
	stranger := testLeaf(t, "stranger")
	wantChain := []string{"leaf.example", "intermediate", "root"}

	// exportP12 runs openssl pkcs12 -export with the leaf's key and
	// certificate and the CA certificates given, in that order.
	exportP12 := func(leaf *testCert, cas []*testCert, extra ...string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			var caPEM []byte
			for _, c := range cas {
				caPEM = append(caPEM, c.CertPEM...)
			}
			args := []string{
				"pkcs12", "-export",
				"-inkey", writeTemp(t, "key.pem", leaf.KeyPEM),
				"-in", writeTemp(t, "cert.pem", leaf.CertPEM),
				"-certfile", writeTemp(t, "cas.pem", caPEM),
				"-passout", "pass:" + testPassphrase,
			}
			args = append(args, extra...)
			if slices.Contains(extra, "-legacy") {
				// OpenSSL 3 needs its legacy provider for RC2 and 3DES.
				out, err := tryOpenSSL(t, args...)
				if err != nil {
					peertest.Skipf(t, "this openssl cannot write legacy PKCS#12: %v", err)
				}
				return out
			}
			return runOpenSSL(t, args...)
		}
	}
	goP12 := func(key crypto.Signer, first *x509.Certificate, cas ...*x509.Certificate) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			data, err := pkcs12.Modern2023.Encode(key, first, cas, testPassphrase)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}

	tests := []struct {
		name      string
		make      func(t *testing.T) []byte
		password  string
		wantKey   crypto.Signer
		wantChain []string
		wantErr   string
		wantIs    error
	}{
		{name: "openssl default", make: exportP12(leaf, []*testCert{root, inter}), password: testPassphrase, wantKey: leaf.Key, wantChain: wantChain},
		{name: "openssl Ed25519", make: exportP12(edLeaf, []*testCert{inter}), password: testPassphrase, wantKey: edLeaf.Key, wantChain: []string{"ed.example", "intermediate"}},
		{name: "openssl legacy", make: exportP12(leaf, []*testCert{inter, root}, "-legacy"), password: testPassphrase, wantKey: leaf.Key, wantChain: wantChain},
		{name: "openssl wrong password", make: exportP12(leaf, []*testCert{root, inter}), password: "wrong", wantErr: "pkcs12: wrong password", wantIs: errWrongPKCS12Password},
		{name: "openssl no password", make: exportP12(leaf, []*testCert{root, inter}), password: "", wantErr: "pkcs12: wrong password (none given)", wantIs: errWrongPKCS12Password},
		{name: "openssl certificates only", make: exportP12(leaf, []*testCert{root}, "-nokeys"), password: testPassphrase, wantErr: "pkcs12: the bundle holds no private key"},
		{name: "openssl unrelated CA", make: exportP12(leaf, []*testCert{inter, root, stranger}), password: testPassphrase, wantErr: "pkcs12: certificate CN=stranger is not part of the chain of CN=leaf.example"},
		{name: "Go, leaf not first", make: goP12(leaf.Key, root.Cert, leaf.Cert, inter.Cert), password: testPassphrase, wantKey: leaf.Key, wantChain: wantChain},
		{name: "Go, key matches no certificate", make: goP12(stranger.Key, leaf.Cert, inter.Cert), password: testPassphrase, wantErr: "pkcs12: private key does not match the certificate (certificate CN=leaf.example, key type ECDSA P-256, certificate key type RSA-2048)"},
		{name: "garbage", make: func(*testing.T) []byte { return []byte("not a bundle") }, password: testPassphrase, wantErr: "pkcs12: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, chain, err := parsePKCS12(tt.make(t), tt.password)
			if tt.wantErr != "" {
				checkErrContains(t, err, tt.wantErr)
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("error %q is not %q", err, tt.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("parsePKCS12: %v", err)
			}
			if !sameKey(key, tt.wantKey) {
				t.Errorf("key %T is not the exported one", key)
			}
			if diff := cmp.Diff(tt.wantChain, commonNames(chain)); diff != "" {
				t.Errorf("chain (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckKeyMatches(t *testing.T) {
	ec := testLeaf(t, "ec")
	rsaCert := testLeaf(t, "rsa", withRSA())
	ed := testLeaf(t, "ed", withEd25519())
	other := testLeaf(t, "other")
	tests := []struct {
		name    string
		key     crypto.Signer
		cert    *x509.Certificate
		wantErr string
	}{
		{name: "ECDSA", key: ec.Key, cert: ec.Cert},
		{name: "RSA", key: rsaCert.Key, cert: rsaCert.Cert},
		{name: "Ed25519", key: ed.Key, cert: ed.Cert},
		{name: "other ECDSA key", key: other.Key, cert: ec.Cert, wantErr: "private key does not match the certificate (certificate CN=ec, key type ECDSA P-256)"},
		{name: "RSA key, ECDSA certificate", key: rsaCert.Key, cert: ec.Cert, wantErr: "private key does not match the certificate (certificate CN=ec, key type RSA-2048, certificate key type ECDSA P-256)"},
		{name: "Ed25519 key, RSA certificate", key: ed.Key, cert: rsaCert.Cert, wantErr: "(certificate CN=rsa, key type Ed25519, certificate key type RSA-2048)"},
		{name: "no certificate", key: ec.Key, cert: nil, wantErr: "missing key or certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkKeyMatches(tt.key, tt.cert)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("checkKeyMatches: %v", err)
				}
				return
			}
			checkErrContains(t, err, tt.wantErr)
		})
	}
}

func TestOrderChain(t *testing.T) {
	root := testCA(t, "root", withRSA())
	inter := root.issue(t, "intermediate", withCA())
	leaf := inter.issue(t, "leaf.example")
	otherRoot := testCA(t, "other-root")
	otherLeaf := otherRoot.issue(t, "other.example")
	selfSigned := testLeaf(t, "self.example")
	full := []string{"leaf.example", "intermediate", "root"}

	certs := func(tcs ...*testCert) []*x509.Certificate {
		var out []*x509.Certificate
		for _, tc := range tcs {
			out = append(out, tc.Cert)
		}
		return out
	}
	tests := []struct {
		name    string
		certs   []*x509.Certificate
		want    []string
		wantErr string
	}{
		{name: "one leaf", certs: certs(leaf), want: []string{"leaf.example"}},
		{name: "one root", certs: certs(root), want: []string{"root"}},
		{name: "self-signed leaf", certs: certs(selfSigned), want: []string{"self.example"}},
		{name: "leaf and issuer", certs: certs(inter, leaf), want: []string{"leaf.example", "intermediate"}},
		{name: "duplicates", certs: certs(root, leaf, inter, leaf, root), want: full},
		{name: "CA chain without leaf", certs: certs(root, inter), want: []string{"intermediate", "root"}},
		{name: "unrelated root", certs: certs(root, otherRoot, leaf, inter), wantErr: "certificate CN=other-root is not part of the chain of CN=leaf.example"},
		{name: "leaf of another CA", certs: certs(otherLeaf, inter, leaf, root), wantErr: "certificate CN=other.example is not part of the chain of CN=leaf.example"},
		{name: "missing intermediate", certs: certs(root, leaf), wantErr: "certificate CN=root is not part of the chain of CN=leaf.example"},
		{name: "two self-signed", certs: certs(selfSigned, otherRoot), wantErr: "certificate CN=other-root is not part of the chain of CN=self.example"},
		{name: "empty", certs: nil, wantErr: "no PEM certificate found"},
	}
	// Every order of leaf, intermediate and root gives the same chain.
	for _, p := range [][]*testCert{
		{leaf, inter, root}, {leaf, root, inter}, {inter, leaf, root},
		{inter, root, leaf}, {root, leaf, inter}, {root, inter, leaf},
	} {
		tests = append(tests, struct {
			name    string
			certs   []*x509.Certificate
			want    []string
			wantErr string
		}{name: "order " + strings.Join(commonNames(certs(p...)), ","), certs: certs(p...), want: full})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := orderChain(tt.certs)
			if tt.wantErr != "" {
				checkErrContains(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("orderChain: %v", err)
			}
			if diff := cmp.Diff(tt.want, commonNames(got)); diff != "" {
				t.Errorf("chain (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCertExpiry(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	cert := func(cn string, notBefore, notAfter time.Time) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter}
	}
	tests := []struct {
		name string
		cert *x509.Certificate
		now  time.Time
		want string
	}{
		{name: "valid a year", cert: cert("x", now.Add(-day), now.Add(365*day)), want: ""},
		{name: "31 days left", cert: cert("x", now.Add(-day), now.Add(31*day)), want: ""},
		{name: "30 days and a second left", cert: cert("x", now.Add(-day), now.Add(30*day+time.Second)), want: ""},
		{name: "30 days left", cert: cert("x", now.Add(-day), now.Add(30*day)), want: "certificate CN=x expires in 30 days (2026-12-23T10:00:00Z)"},
		{name: "6 days left", cert: cert("x", now.Add(-day), now.Add(6*day)), want: "certificate CN=x expires in 6 days (2026-11-29T10:00:00Z)"},
		{name: "1 day left", cert: cert("x", now.Add(-day), now.Add(day+time.Hour)), want: "certificate CN=x expires in 1 day (2026-11-24T11:00:00Z)"},
		{name: "5 hours left", cert: cert("x", now.Add(-day), now.Add(5*time.Hour+time.Minute)), want: "certificate CN=x expires in 5 hours (2026-11-23T15:01:00Z)"},
		{name: "30 seconds left", cert: cert("x", now.Add(-day), now.Add(30*time.Second)), want: "certificate CN=x expires in less than a minute (2026-11-23T10:00:30Z)"},
		{name: "expires now", cert: cert("x", now.Add(-day), now), want: "certificate CN=x expires in less than a minute (2026-11-23T10:00:00Z)"},
		{name: "expired 3 days ago", cert: cert("x", now.Add(-90*day), now.Add(-3*day)), want: "certificate CN=x expired 3 days ago (2026-11-20T10:00:00Z)"},
		{name: "expired 1 minute ago", cert: cert("x", now.Add(-90*day), now.Add(-time.Minute)), want: "certificate CN=x expired 1 minute ago (2026-11-23T09:59:00Z)"},
		{name: "not yet valid", cert: cert("x", now.Add(2*day), now.Add(90*day)), want: "certificate CN=x is not valid before 2026-11-25T10:00:00Z (in 2 days)"},
		{name: "valid from now", cert: cert("x", now, now.Add(90*day)), want: ""},
		{name: "other time zone", cert: cert("x", now.Add(-day), now.Add(6*day)), now: now.In(time.FixedZone("CET", 3600)), want: "certificate CN=x expires in 6 days (2026-11-29T10:00:00Z)"},
		{name: "no common name", cert: &x509.Certificate{Subject: pkix.Name{Organization: []string{"Edge"}}, RawSubject: []byte{1}, NotAfter: now.Add(-day)}, want: "certificate O=Edge expired 1 day ago (2026-11-22T10:00:00Z)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := now
			if !tt.now.IsZero() {
				at = tt.now
			}
			if got := certExpiry(tt.cert, at); got != tt.want {
				t.Errorf("certExpiry = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDescribeCert(t *testing.T) {
	// SHA-256("abc") is the FIPS 180-2 test vector.
	const abc = "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
	tests := []struct {
		name string
		cert *x509.Certificate
		want string
	}{
		{
			name: "odd hex digits padded",
			cert: &x509.Certificate{Raw: []byte("abc"), Subject: pkix.Name{CommonName: "edge-1"}, SerialNumber: big.NewInt(0xA1B)},
			want: "CN=edge-1, serial 0A1B, SHA-256 fingerprint " + abc,
		},
		{
			name: "even hex digits",
			cert: &x509.Certificate{Raw: []byte("abc"), Subject: pkix.Name{CommonName: "edge-1"}, SerialNumber: big.NewInt(0xFF01)},
			want: "CN=edge-1, serial FF01, SHA-256 fingerprint " + abc,
		},
		{
			name: "no serial",
			cert: &x509.Certificate{Raw: []byte("abc")},
			want: "with empty subject, serial unknown, SHA-256 fingerprint " + abc,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describeCert(tt.cert); got != tt.want {
				t.Errorf("describeCert = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestFingerprintOpenSSL checks fingerprint and the serial of describeCert
// against what openssl x509 prints.
func TestFingerprintOpenSSL(t *testing.T) {
	for _, tc := range []*testCert{testLeaf(t, "ec"), testCA(t, "rsa", withRSA())} {
		t.Run(tc.Cert.Subject.CommonName, func(t *testing.T) {
			in := writeTemp(t, "cert.pem", tc.CertPEM)
			out := string(runOpenSSL(t, "x509", "-noout", "-fingerprint", "-sha256", "-serial", "-in", in))
			var wantFP, wantSerial string
			for line := range strings.Lines(out) {
				k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
				switch strings.ToLower(k) {
				case "sha256 fingerprint":
					wantFP = v
				case "serial":
					wantSerial = v
				}
			}
			if got := fingerprint(tc.Cert); got != wantFP {
				t.Errorf("fingerprint = %q, openssl says %q", got, wantFP)
			}
			if got, want := describeCert(tc.Cert), "serial "+wantSerial+","; !strings.Contains(got, want) {
				t.Errorf("describeCert = %q, want it to contain %q", got, want)
			}
		})
	}
}

func FuzzParseKeyPEM(f *testing.F) {
	ec := testLeaf(f, "ec")
	rsaKey := newTestKey(f, x509.RSA)
	ed := newTestKey(f, x509.Ed25519)
	f.Add(ec.KeyPEM, []byte(nil))
	f.Add(cat(ec.CertPEM, ec.KeyPEM), []byte(nil))
	f.Add(pemBlock("EC PRIVATE KEY", mustSEC1(f, ec.Key.(*ecdsa.PrivateKey))), []byte(nil))
	f.Add(pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey.(*rsa.PrivateKey))), []byte(nil))
	f.Add(mustPKCS8(f, ed), []byte(nil))
	f.Add(encryptPKCS8(f, ed, testPassphrase), []byte(testPassphrase))
	f.Add(encryptPKCS8(f, ec.Key, testPassphrase), []byte("wrong"))
	f.Add(legacyEncrypt(f, ec.Key), []byte(testPassphrase))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"), []byte(nil))
	f.Add([]byte("garbage"), []byte(nil))
	f.Fuzz(func(t *testing.T, data, pass []byte) {
		key, err := pemkey.Parse(data, pass)
		if (key == nil) == (err == nil) {
			t.Fatalf("parseKeyPEM = %v, %v: want exactly one of key and error", key, err)
		}
	})
}

func FuzzParseCertsPEM(f *testing.F) {
	root := testCA(f, "root")
	leaf := root.issue(f, "leaf.example", withEd25519())
	f.Add(leaf.CertPEM)
	f.Add(cat(leaf.CertPEM, root.CertPEM))
	f.Add(cat(leaf.KeyPEM, leaf.CertPEM))
	f.Add(leaf.Cert.Raw)
	f.Add(pemBlock("CERTIFICATE", []byte("junk")))
	f.Add([]byte("garbage"))
	now := time.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := parseCertsPEM(data)
		if err != nil {
			if certs != nil {
				t.Fatalf("parseCertsPEM returned certificates with error %v", err)
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("parseCertsPEM returned neither certificates nor an error")
		}
		for _, c := range certs {
			describeCert(c)
			certExpiry(c, now)
		}
		if len(certs) <= 8 {
			_, _ = orderChain(certs) // must not panic
		}
	})
}

// checkKeyResult checks a parsed key against want, or err against wantErr
// (a substring) and wantIs.
func checkKeyResult(t *testing.T, got crypto.Signer, err error, want crypto.Signer, wantErr string, wantIs error) {
	t.Helper()
	if wantErr != "" {
		checkErrContains(t, err, wantErr)
		if wantIs != nil && !errors.Is(err, wantIs) {
			t.Errorf("error %q is not %q", err, wantIs)
		}
		if got != nil {
			t.Errorf("got key %T with the error", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if !sameKey(got, want) {
		t.Errorf("got key %T, not the one encoded (%T)", got, want)
	}
}

func checkErrContains(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to contain %q", err, want)
	}
}

func sameKey(a, b crypto.Signer) bool {
	k, ok := a.(interface{ Equal(crypto.PrivateKey) bool })
	return ok && b != nil && k.Equal(b)
}

func commonNames(certs []*x509.Certificate) []string {
	var out []string
	for _, c := range certs {
		out = append(out, c.Subject.CommonName)
	}
	return out
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func mustPKCS8(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustSEC1(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustECDSA(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// algID is an AlgorithmIdentifier with params DER-encoded.
func algID(t testing.TB, oid asn1.ObjectIdentifier, params any) pkix.AlgorithmIdentifier {
	t.Helper()
	der, err := asn1.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.RawValue{FullBytes: der}}
}

// encryptPKCS8 encrypts key as OpenSSL does by default: PBES2 with
// PBKDF2-HMAC-SHA256 (2048 iterations) and AES-256-CBC.
func encryptPKCS8(t testing.TB, key crypto.Signer, pass string) []byte {
	t.Helper()
	salt, iv := make([]byte, 16), make([]byte, aes.BlockSize)
	rand.Read(salt)
	rand.Read(iv)
	const iterations = 2048
	dk, err := pbkdf2.Key(sha256.New, pass, salt, iterations, 32)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(dk)
	if err != nil {
		t.Fatal(err)
	}
	plain := mustPKCS8(t, key)
	n := aes.BlockSize - len(plain)%aes.BlockSize
	data := append(plain, bytes.Repeat([]byte{byte(n)}, n)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(data, data)
	hmacSHA256 := pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}, Parameters: asn1.NullRawValue}
	alg := algID(t, oidPBES2, pbes2Params{
		KDF:    algID(t, oidPBKDF2, pbkdf2Params{Salt: salt, Iterations: iterations, PRF: hmacSHA256}),
		Scheme: algID(t, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}, iv),
	})
	der, err := asn1.Marshal(encryptedPrivateKeyInfo{Algorithm: alg, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("ENCRYPTED PRIVATE KEY", der)
}

// legacyEncrypt writes key as legacy encrypted PEM (Proc-Type:
// 4,ENCRYPTED) with AES-256-CBC: PKCS#1 for RSA, SEC1 for ECDSA.
func legacyEncrypt(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	var typ string
	var der []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		typ, der = "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k)
	case *ecdsa.PrivateKey:
		typ, der = "EC PRIVATE KEY", mustSEC1(t, k)
	default:
		t.Fatalf("legacy PEM cannot hold a %T", key)
	}
	//lint:ignore SA1019 testing the legacy format on purpose.
	block, err := x509.EncryptPEMBlock(rand.Reader, typ, der, []byte(testPassphrase), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

// runOpenSSL runs openssl with args and returns its standard output.
func runOpenSSL(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := tryOpenSSL(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tryOpenSSL is runOpenSSL returning the failure, with openssl's stderr.
func tryOpenSSL(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	path := requirePeer(t, "openssl")
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("openssl %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// writeTemp writes data to a file in the test's temporary directory.
func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
