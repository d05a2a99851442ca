package jwttest

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// Reason ids, as the solution defines them (jwtauth.Reason*); repeated
// here so that the corpus states what it expects independently.
const (
	malformed       = "malformed"
	tooLarge        = "too_large"
	badAlg          = "bad_alg"
	badTyp          = "bad_typ"
	critUnsupported = "crit_unsupported"
	duplicateClaims = "duplicate_claims"
	unknownKID      = "unknown_kid"
	badSignature    = "bad_signature"
	missingExp      = "missing_exp"
	expired         = "expired"
	notYetValid     = "not_yet_valid"
	issuedInFuture  = "issued_in_future"
	badIssuer       = "bad_issuer"
	badAudience     = "bad_audience"
	badUserID       = "bad_user_id"
	badClaims       = "bad_claims"
)

// Corpus returns the attack corpus for s. Tokens whose jku or x5u header
// points at a key server name one the corpus starts (TLS, a real socket);
// when the test ends, that server must have had no request, or the test
// fails: keys never come from a token.
func Corpus(t testing.TB, s Setup) []Case {
	t.Helper()
	attRSA, attEC := AttackerKeys()
	attKID := "attacker-key"
	var hits atomic.Int64
	jwks, _ := json.Marshal(map[string]any{"keys": []any{publicJWK(t, &attRSA.PublicKey, attKID)}})
	attacker := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}))
	t.Cleanup(func() {
		attacker.Close()
		if n := hits.Load(); n != 0 {
			t.Errorf("jwttest: the attacker's key server got %d requests, want 0: a key was taken from a token header", n)
		}
	})

	good := map[string]any{"alg": "RS256", "typ": "JWT", "kid": s.KID}
	hdr := func(changes map[string]any) map[string]any {
		h := maps.Clone(good)
		for k, v := range changes {
			if v == nil {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	claims := func(changes map[string]any) map[string]any {
		c := Claims(s)
		for k, v := range changes {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	rs := func(h, c map[string]any) string { return Sign(t, jwt.SigningMethodRS256, s.Key, h, c) }
	attacker256 := func(h map[string]any) string { return Sign(t, jwt.SigningMethodRS256, attRSA, h, Claims(s)) }
	unsigned := func(h map[string]any, sig string) string {
		return Encode(mustJSON(t, h)) + "." + Encode(mustJSON(t, Claims(s))) + "." + sig
	}
	goodClaimsJSON := mustJSON(t, Claims(s))
	pubDER, err := x509.MarshalPKIXPublicKey(&s.Key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pkcs1DER := x509.MarshalPKCS1PublicKey(&s.Key.PublicKey)
	valid := Valid(t, s)
	vh, vrest, _ := strings.Cut(valid, ".")
	vc, vsig, _ := strings.Cut(vrest, ".")
	limit := s.MaxTokenBytes
	if limit == 0 {
		limit = 8192
	}
	hour := time.Hour

	type tc struct {
		name, token, reason string
	}
	tokens := []tc{
		// alg confusion
		{"alg none", unsigned(hdr(map[string]any{"alg": "none"}), ""), badAlg},
		{"alg None with signature", unsigned(hdr(map[string]any{"alg": "None"}), vsig), badAlg},
		{"alg NONE", unsigned(hdr(map[string]any{"alg": "NONE"}), ""), badAlg},
		{"alg missing", rs(hdr(map[string]any{"alg": nil}), Claims(s)), badAlg},
		{"alg not a string", rs(hdr(map[string]any{"alg": 256}), Claims(s)), badAlg},
		{"alg with trailing space", rs(hdr(map[string]any{"alg": "RS256 "}), Claims(s)), badAlg},
		{"alg lower case", rs(hdr(map[string]any{"alg": "rs256"}), Claims(s)), badAlg},
		{"HS256 keyed with the public key PEM", Sign(t, jwt.SigningMethodHS256, pubPEM, hdr(map[string]any{"alg": "HS256"}), Claims(s)), badAlg},
		{"HS256 keyed with the public key DER", Sign(t, jwt.SigningMethodHS256, pubDER, hdr(map[string]any{"alg": "HS256"}), Claims(s)), badAlg},
		{"HS512 keyed with the PKCS#1 public key", Sign(t, jwt.SigningMethodHS512, pkcs1DER, hdr(map[string]any{"alg": "HS512"}), Claims(s)), badAlg},
		{"HS256 without kid", Sign(t, jwt.SigningMethodHS256, pubPEM, map[string]any{"alg": "HS256"}, Claims(s)), badAlg},
		{"ES256 header on the RSA key's kid", Sign(t, jwt.SigningMethodES256, attEC, hdr(map[string]any{"alg": "ES256"}), Claims(s)), badAlg},
		{"RS256 header, ES256 signature", func() string {
			es := Sign(t, jwt.SigningMethodES256, attEC, good, Claims(s))
			return es
		}(), badSignature},
		// kid games
		{"kid unknown", attacker256(hdr(map[string]any{"kid": "no-such-key"})), unknownKID},
		{"kid path traversal", attacker256(hdr(map[string]any{"kid": "../../../../etc/passwd"})), unknownKID},
		{"kid SQL", attacker256(hdr(map[string]any{"kid": "x' UNION SELECT 'secret' --"})), unknownKID},
		{"kid /dev/null", Sign(t, jwt.SigningMethodHS256, []byte{0}, hdr(map[string]any{"alg": "HS256", "kid": "/dev/null"}), Claims(s)), badAlg},
		{"kid not a string", rs(hdr(map[string]any{"kid": 1}), Claims(s)), malformed},
		// keys named or carried by the token
		{"jku to the attacker, attacker kid", attacker256(hdr(map[string]any{"kid": attKID, "jku": attacker.URL + "/jwks.json"})), unknownKID},
		{"jku to the attacker, trusted kid", attacker256(hdr(map[string]any{"jku": attacker.URL + "/jwks.json"})), badSignature},
		{"x5u to the attacker", attacker256(hdr(map[string]any{"kid": attKID, "x5u": attacker.URL + "/cert.pem"})), unknownKID},
		{"x5u to the attacker, trusted kid", attacker256(hdr(map[string]any{"x5u": attacker.URL + "/cert.pem"})), badSignature},
		{"embedded jwk, no kid", attacker256(map[string]any{"alg": "RS256", "jwk": publicJWK(t, &attRSA.PublicKey, "")}), badSignature},
		{"embedded jwk, trusted kid", attacker256(hdr(map[string]any{"jwk": publicJWK(t, &attRSA.PublicKey, s.KID)})), badSignature},
		{"embedded x5c, no kid", attacker256(map[string]any{"alg": "RS256", "x5c": []string{base64.StdEncoding.EncodeToString(selfSigned(t, attRSA))}}), badSignature},
		{"another key under the trusted kid", attacker256(good), badSignature},
		// signature
		{"empty signature", vh + "." + vc + ".", badSignature},
		{"truncated signature", vh + "." + vc + "." + vsig[:len(vsig)-6] + vsig[len(vsig)-2:], badSignature},
		{"claims changed after signing", vh + "." + Encode(strings.Replace(goodClaimsJSON, `"sub":"alice"`, `"sub":"admin"`, 1)) + "." + vsig, badSignature},
		{"signature of another token", vh + "." + Encode(mustJSON(t, claims(map[string]any{"sub": "mallory"}))) + "." + vsig, badSignature},
		// time
		{"expired", rs(good, claims(map[string]any{"exp": s.Now.Add(-hour).Unix(), "iat": s.Now.Add(-2 * hour).Unix()})), expired},
		{"nbf in the future", rs(good, claims(map[string]any{"nbf": s.Now.Add(hour).Unix()})), notYetValid},
		{"iat in the future", rs(good, claims(map[string]any{"iat": s.Now.Add(hour).Unix()})), issuedInFuture},
		{"missing exp", rs(good, claims(map[string]any{"exp": nil})), missingExp},
		{"exp as a string", rs(good, claims(map[string]any{"exp": fmt.Sprint(s.Now.Add(hour).Unix())})), badClaims},
		{"exp negative", rs(good, claims(map[string]any{"exp": -1})), badClaims},
		{"exp past year 9999", rs(good, claims(map[string]any{"exp": 1e300})), badClaims},
		{"nbf as a string", rs(good, claims(map[string]any{"nbf": "0"})), badClaims},
		// issuer, audience
		{"wrong iss", rs(good, claims(map[string]any{"iss": s.Issuer + ".evil"})), badIssuer},
		{"missing iss", rs(good, claims(map[string]any{"iss": nil})), badIssuer},
		{"iss as a list", rs(good, claims(map[string]any{"iss": []string{s.Issuer}})), badIssuer},
		{"wrong aud", rs(good, claims(map[string]any{"aud": "someone-else"})), badAudience},
		{"missing aud", rs(good, claims(map[string]any{"aud": nil})), badAudience},
		{"aud as a number", rs(good, claims(map[string]any{"aud": 1})), badAudience},
		// identity claims
		{"user id missing", rs(good, claims(map[string]any{"sub": nil})), badUserID},
		{"user id empty", rs(good, claims(map[string]any{"sub": ""})), badUserID},
		{"user id not a string", rs(good, claims(map[string]any{"sub": 42})), badUserID},
		{"groups a number", rs(good, claims(map[string]any{"groups": 7})), badClaims},
		{"groups with a non-string", rs(good, claims(map[string]any{"groups": []any{"staff", 1}})), badClaims},
		{"groups an object", rs(good, claims(map[string]any{"groups": map[string]any{"admin": true}})), badClaims},
		// header extensions, types
		{"crit", rs(hdr(map[string]any{"crit": []string{"exp"}, "exp": 1}), Claims(s)), critUnsupported},
		{"crit empty", rs(hdr(map[string]any{"crit": []string{}}), Claims(s)), critUnsupported},
		{"b64 false", rs(hdr(map[string]any{"b64": false, "crit": []string{"b64"}}), Claims(s)), critUnsupported},
		{"typ weird", rs(hdr(map[string]any{"typ": "dpop+jwt"}), Claims(s)), badTyp},
		{"typ not a string", rs(hdr(map[string]any{"typ": 1}), Claims(s)), badTyp},
		{"cty nested JWT", rs(hdr(map[string]any{"cty": "JWT"}), Claims(s)), badTyp},
		// duplicate keys
		{"duplicate alg in header", SignRaw(t, jwt.SigningMethodRS256, s.Key, `{"alg":"RS256","kid":"`+s.KID+`","alg":"none"}`, goodClaimsJSON), duplicateClaims},
		{"duplicate kid via an escape", SignRaw(t, jwt.SigningMethodRS256, s.Key, `{"alg":"RS256","kid":"`+s.KID+`","\u006bid":"other"}`, goodClaimsJSON), duplicateClaims},
		{"duplicate sub in claims", SignRaw(t, jwt.SigningMethodRS256, s.Key, mustJSON(t, good), strings.TrimSuffix(goodClaimsJSON, "}")+`,"sub":"admin"}`), duplicateClaims},
		{"duplicate key in a nested claim", SignRaw(t, jwt.SigningMethodRS256, s.Key, mustJSON(t, good), strings.TrimSuffix(goodClaimsJSON, "}")+`,"x":{"a":1,"a":2}}`), duplicateClaims},
		// encoding and shape
		{"oversize", rs(good, claims(map[string]any{"pad": strings.Repeat("a", limit)})), tooLarge},
		{"header not base64url", "eyJ!bGciOiJSUzI1NiJ9." + vc + "." + vsig, malformed},
		{"claims not base64url", vh + ".eyJ*c3ViIjoiYSJ9." + vsig, malformed},
		{"signature not base64url", vh + "." + vc + "." + vsig[:10] + "+/" + vsig[12:], malformed},
		{"padded header", vh + "==." + vc + "." + vsig, malformed},
		{"header not JSON", Encode("RS256") + "." + vc + "." + vsig, malformed},
		{"header a JSON array", Encode(`["RS256"]`) + "." + vc + "." + vsig, malformed},
		{"claims not an object", SignRaw(t, jwt.SigningMethodRS256, s.Key, mustJSON(t, good), `["alice"]`), malformed},
		{"claims with trailing data", SignRaw(t, jwt.SigningMethodRS256, s.Key, mustJSON(t, good), goodClaimsJSON+`{}`), malformed},
		{"header nested too deep", Encode(`{"alg":"RS256","x":`+strings.Repeat("[", 64)+strings.Repeat("]", 64)+`}`) + "." + vc + "." + vsig, malformed},
		{"two segments", vh + "." + vc, malformed},
		{"four segments", valid + "." + vsig, malformed},
		{"five segments (JWE)", vh + "." + vc + "." + vsig + "." + vc + "." + vsig, malformed},
		{"one segment", vc, malformed},
		{"empty segments", "..", malformed},
	}
	if s.RemovedKey != nil {
		tokens = append(tokens, tc{"key removed from the JWK set", Sign(t, jwt.SigningMethodRS256, s.RemovedKey, hdr(map[string]any{"kid": s.RemovedKID}), Claims(s)), unknownKID})
	}
	var cases []Case
	for _, tk := range tokens {
		cases = append(cases, Case{Name: tk.name, Authorization: []string{"Bearer " + tk.token}, Outcome: auth.Refused, Reason: tk.reason})
	}
	tampered := vh + "." + vc + "." + vsig[:len(vsig)-4] + "AAAA"
	cases = append(cases,
		Case{Name: "lower-case bearer scheme, tampered", Authorization: []string{"bearer " + tampered}, Outcome: auth.Refused, Reason: badSignature},
		Case{Name: "bearer without a token", Authorization: []string{"Bearer "}, Outcome: auth.Refused, Reason: malformed},
		Case{Name: "bearer with two tokens", Authorization: []string{"Bearer " + valid + " " + valid}, Outcome: auth.Refused, Reason: malformed},
		Case{Name: "two bearer headers", Authorization: []string{"Bearer " + valid, "Bearer " + tampered}, Outcome: auth.Refused, Reason: malformed},
	)
	if s.Cookie == "" {
		cases = append(cases, Case{Name: "token in a cookie, no cookie configured", Cookies: []*http.Cookie{{Name: "token", Value: valid}, {Name: "jwt", Value: valid}}, Outcome: auth.NoCredentials})
	} else {
		cases = append(cases,
			Case{Name: "tampered token in the cookie", Cookies: []*http.Cookie{{Name: s.Cookie, Value: tampered}}, Outcome: auth.Refused, Reason: badSignature},
			Case{Name: "cookie sent twice", Cookies: []*http.Cookie{{Name: s.Cookie, Value: valid}, {Name: s.Cookie, Value: valid}}, Outcome: auth.Refused, Reason: malformed},
			Case{Name: "valid token in another cookie", Cookies: []*http.Cookie{{Name: s.Cookie + "x", Value: valid}}, Outcome: auth.NoCredentials},
		)
	}
	return cases
}
