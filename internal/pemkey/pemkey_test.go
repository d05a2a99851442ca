package pemkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

// The full matrix (encrypted forms, OpenSSL interop, crafted PBES2
// parameters, fuzzing) runs in keystore's parse_test.go, which imports keys
// through this package; these cases pin the package's own contract.
func TestParse(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	short, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	tests := []struct {
		name    string
		data    []byte
		wantErr string
		wantIs  error
	}{
		{name: "PKCS#8 PEM", data: block("PRIVATE KEY", pkcs8)},
		{name: "PKCS#8 DER", data: pkcs8},
		{name: "certificate only", data: block("CERTIFICATE", []byte{1}), wantIs: ErrNoKey},
		{name: "two keys", data: append(block("PRIVATE KEY", pkcs8), block("PRIVATE KEY", pkcs8)...), wantErr: "found 2 private keys: give exactly one"},
		{name: "short RSA", data: block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(short)), wantErr: "RSA key of 1024 bits is too short: use at least 2048"},
		{name: "OpenSSH", data: block("OPENSSH PRIVATE KEY", []byte{1}), wantErr: "ssh-keygen -p -m PKCS8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := Parse(tt.data, nil)
			switch {
			case tt.wantIs != nil:
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("Parse error = %v, want %v", err, tt.wantIs)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("Parse: %v", err)
			case !ec.Public().(*ecdsa.PublicKey).Equal(key.Public()):
				t.Fatalf("Parse returned another key")
			}
		})
	}
}
