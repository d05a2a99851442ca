package jwtauth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

// TestParseJWKS: usable signature keys are taken, the rest skipped with a
// reason; a set without a usable key is an error.
func TestParseJWKS(t *testing.T) {
	a := testKeys()[0]
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	jwk := func(k jose.JSONWebKey) json.RawMessage {
		b, err := k.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	set := func(keys ...json.RawMessage) []byte {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return b
	}
	tests := []struct {
		name    string
		data    []byte
		kids    []string
		skipped []string // substrings, in order
		err     string
	}{
		{"one key", set(jwk(jose.JSONWebKey{Key: &a.PublicKey, KeyID: "a"})), []string{"a"}, nil, ""},
		{"no kid: the thumbprint", set(jwk(jose.JSONWebKey{Key: &a.PublicKey})), []string{thumbprint(t, a)}, nil, ""},
		{"private JWK refused", set(jwk(jose.JSONWebKey{Key: a, KeyID: "a"}), jwk(jose.JSONWebKey{Key: &a.PublicKey, KeyID: "b"})), []string{"b"}, []string{`(kid "a"): not a public key`}, ""},
		{"odd keys skipped", set(
			jwk(jose.JSONWebKey{Key: &small.PublicKey, KeyID: "small"}),
			jwk(jose.JSONWebKey{Key: []byte("secret"), KeyID: "oct"}),
			jwk(jose.JSONWebKey{Key: &a.PublicKey, KeyID: "enc", Use: "enc"}),
			json.RawMessage(`{"kty":"XYZ","kid":"x"}`),
			jwk(jose.JSONWebKey{Key: &a.PublicKey, KeyID: "a", Algorithm: "ES256"}),
			jwk(jose.JSONWebKey{Key: &a.PublicKey, KeyID: "good"}),
			json.RawMessage(`{"kty":"EC","crv":"P-224","x":"AAAA","y":"AAAA","kid":"p224"}`),
			jwk(jose.JSONWebKey{Key: &a.PublicKey, KeyID: "good"}),
		), []string{"good"}, []string{"under the minimum of 2048", `(kid "oct"): not a public key`, `use "enc"`, "keys[3]", `alg "ES256" does not fit`, "keys[6]", `kid "good" repeated`}, ""},
		{"only a secret", set(jwk(jose.JSONWebKey{Key: []byte("secret"), KeyID: "oct"})), nil, nil, "no usable signature key"},
		{"not JSON", []byte("<html>"), nil, nil, "decode JWK set"},
		{"too many keys", set(func() []json.RawMessage {
			k := make([]json.RawMessage, maxJWKSKeys+1)
			for i := range k {
				k[i] = json.RawMessage(`{}`)
			}
			return k
		}()...), nil, nil, "65 keys, over the limit of 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, skipped, err := parseJWKS(tt.data, "test")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kids []string
			for _, k := range keys {
				kids = append(kids, k.kid)
			}
			if diff := cmp.Diff(tt.kids, kids); diff != "" {
				t.Errorf("kids (-want +got):\n%s", diff)
			}
			if len(skipped) != len(tt.skipped) {
				t.Fatalf("skipped = %q, want %d entries", skipped, len(tt.skipped))
			}
			for i, want := range tt.skipped {
				if !strings.Contains(skipped[i], want) {
					t.Errorf("skipped[%d] = %q, want it to contain %q", i, skipped[i], want)
				}
			}
		})
	}
}
