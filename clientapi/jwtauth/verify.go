package jwtauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// b64 decodes a token segment: unpadded base64url, trailing bits zero.
var b64 = base64.RawURLEncoding.Strict()

// acceptedTypes are the typ values of tokens meant for authentication
// (compared case-insensitively, RFC 7515 §4.1.9). Any other typ marks a
// token made for something else (a logout token, a DPoP proof, ...) that
// must not pass for an access token (RFC 8725 §3.11).
var acceptedTypes = []string{"JWT", "at+jwt", "application/jwt", "application/at+jwt"}

// maxNumericDate is the end of year 9999: a larger date is not a date.
const maxNumericDate = 253402300799

// header is the JOSE header fields we read; the rest (jku, x5u, jwk, x5c
// among them) is ignored: keys never come from the token.
type header struct {
	Alg  json.RawMessage `json:"alg"`
	Kid  json.RawMessage `json:"kid"`
	Typ  json.RawMessage `json:"typ"`
	Cty  json.RawMessage `json:"cty"`
	Crit json.RawMessage `json:"crit"`
}

// verify checks token and maps its claims. On refusal reason is set and
// err says why, without token content beyond short claim values.
func (s *Solution) verify(token string, now time.Time) (id auth.Identity, thumbprint, reason string, err error) {
	id, _, thumbprint, reason, err = s.verifyClaims(token, now)
	return id, thumbprint, reason, err
}

// Verify checks token as Authenticate does (signature, exp, nbf, iat,
// issuer, audience, the identity claims), without the cache, and returns
// its claims as well: the OIDC solution checks the ID token's nonce and
// azp on top.
func (s *Solution) Verify(token string) (id auth.Identity, claims map[string]any, reason string, err error) {
	id, claims, _, reason, err = s.verifyClaims(token, s.now())
	return id, claims, reason, err
}

func (s *Solution) verifyClaims(token string, now time.Time) (id auth.Identity, claims map[string]any, thumbprint, reason string, err error) {
	if n := strings.Count(token, ".") + 1; n != 3 {
		if n == 5 {
			return id, nil, "", ReasonMalformed, errors.New("5 segments: an encrypted token (JWE) is not accepted")
		}
		return id, nil, "", ReasonMalformed, fmt.Errorf("%d segments, want 3", n)
	}
	h64, rest, _ := strings.Cut(token, ".")
	c64, sig64, _ := strings.Cut(rest, ".")
	alg, kid, reason, err := s.checkHeader(h64)
	if reason != "" {
		return id, nil, "", reason, err
	}
	claimsJSON, err := b64.DecodeString(c64)
	if err != nil {
		return id, nil, "", ReasonMalformed, fmt.Errorf("claims: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(claimsJSON))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return id, nil, "", ReasonMalformed, fmt.Errorf("claims: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return id, nil, "", ReasonMalformed, errors.New("claims: data after the JSON object")
	}
	if reason, err := keysReason(checkKeys(claimsJSON)); reason != "" {
		return id, nil, "", reason, fmt.Errorf("claims: %w", err)
	}
	sig, err := b64.DecodeString(sig64)
	if err != nil {
		return id, nil, "", ReasonMalformed, fmt.Errorf("signature: %w", err)
	}
	key, reason, err := s.selectKey(alg, kid, []byte(token[:len(h64)+1+len(c64)]), sig)
	if reason != "" {
		return id, nil, "", reason, err
	}
	id, reason, err = s.checkClaims(claims, now)
	return id, claims, key.thumbprint, reason, err
}

// checkHeader decodes and checks the JOSE header; alg is one the
// configuration allows.
func (s *Solution) checkHeader(h64 string) (alg, kid, reason string, err error) {
	raw, err := b64.DecodeString(h64)
	if err != nil {
		return "", "", ReasonMalformed, fmt.Errorf("header: %w", err)
	}
	var h header
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", "", ReasonMalformed, fmt.Errorf("header: %w", err)
	}
	if reason, err := keysReason(checkKeys(raw)); reason != "" {
		return "", "", reason, fmt.Errorf("header: %w", err)
	}
	if h.Crit != nil {
		return "", "", ReasonCritUnsupported, errors.New("header has crit: no extension is understood")
	}
	alg, ok := jsonString(h.Alg)
	if !ok || !s.algs[alg] {
		return "", "", ReasonBadAlg, fmt.Errorf("alg %.40s is not allowed", h.Alg)
	}
	if h.Kid != nil {
		if kid, ok = jsonString(h.Kid); !ok {
			return "", "", ReasonMalformed, errors.New("header: kid is not a string")
		}
	}
	if h.Typ != nil {
		if typ, ok := jsonString(h.Typ); !ok || !containsFold(acceptedTypes, typ) {
			return "", "", ReasonBadTyp, fmt.Errorf("typ %.40s is not a JWT type", h.Typ)
		}
	}
	if h.Cty != nil {
		return "", "", ReasonBadTyp, errors.New("header has cty: nested tokens are not accepted")
	}
	return alg, kid, "", nil
}

// keysReason maps a checkKeys error to its reason.
func keysReason(err error) (string, error) {
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, errDuplicateKey):
		return ReasonDuplicateClaims, err
	}
	return ReasonMalformed, err
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// selectKey finds the configured key for kid (a token without kid tries
// every key of alg's type) and checks the signature with it. A kid not in
// the set fetches the JWK Set again, within its rate limit.
func (s *Solution) selectKey(alg, kid string, signed, sig []byte) (*verifyKey, string, error) {
	var gen uint64
	if s.jwks != nil {
		gen = s.jwks.generation.Load()
	}
	set := s.currentKeys()
	var candidates []*verifyKey
	if kid != "" {
		k := set.byKID[kid]
		if k == nil && s.jwks != nil {
			s.jwks.unknownKID(gen)
			set = s.keys.Load()
			k = set.byKID[kid]
		}
		if k == nil {
			return nil, ReasonUnknownKID, fmt.Errorf("no key has kid %.80q", kid)
		}
		if allowedAlgorithms[alg] != k.typ || k.alg != "" && k.alg != alg {
			return nil, ReasonBadAlg, fmt.Errorf("alg %s does not fit key %s", alg, k.kid)
		}
		candidates = []*verifyKey{k}
	} else {
		for _, k := range set.all {
			if allowedAlgorithms[alg] == k.typ && (k.alg == "" || k.alg == alg) {
				candidates = append(candidates, k)
			}
		}
		if len(candidates) == 0 {
			return nil, ReasonUnknownKID, fmt.Errorf("no kid, and no key serves alg %s", alg)
		}
	}
	method := jwt.GetSigningMethod(alg)
	if method == nil {
		return nil, ReasonBadAlg, fmt.Errorf("alg %s has no implementation", alg)
	}
	var err error
	for _, k := range candidates {
		s.verifications.Add(1)
		if err = method.Verify(string(signed), sig, k.pub); err == nil {
			return k, "", nil
		}
	}
	return nil, ReasonBadSignature, fmt.Errorf("signature does not verify with key %s: %w", candidates[0].kid, err)
}

// checkClaims checks the registered claims of a verified token and maps
// the identity.
func (s *Solution) checkClaims(c map[string]any, now time.Time) (auth.Identity, string, error) {
	var id auth.Identity
	exp, ok, err := numericDate(c, "exp")
	switch {
	case err != nil:
		return id, ReasonBadClaims, err
	case !ok:
		return id, ReasonMissingExp, errors.New("no exp claim")
	case !now.Before(exp.Add(s.leeway)):
		return id, ReasonExpired, fmt.Errorf("expired at %s", exp.UTC().Format(time.RFC3339))
	}
	for _, tc := range []struct{ claim, reason string }{{"nbf", ReasonNotYetValid}, {"iat", ReasonIssuedInFuture}} {
		t, ok, err := numericDate(c, tc.claim)
		if err != nil {
			return id, ReasonBadClaims, err
		}
		if ok && t.After(now.Add(s.leeway)) {
			return id, tc.reason, fmt.Errorf("%s is %s, in the future", tc.claim, t.UTC().Format(time.RFC3339))
		}
	}
	if iss, _ := c["iss"].(string); iss != s.cfg.Issuer {
		return id, ReasonBadIssuer, fmt.Errorf("iss %.80q is not %q", iss, s.cfg.Issuer)
	}
	aud, err := stringList(c, "aud")
	if err != nil {
		return id, ReasonBadAudience, err
	}
	if !containsAny(aud, s.cfg.Audience) {
		return id, ReasonBadAudience, fmt.Errorf("aud %.80q names none of %q", aud, s.cfg.Audience)
	}
	return s.identity(c, exp)
}

func (s *Solution) identity(c map[string]any, exp time.Time) (auth.Identity, string, error) {
	id := auth.Identity{Solution: s.cfg.Name, Expires: exp, Directory: s.cfg.Claims.DirectoryValue}
	user, _ := c[s.cfg.Claims.UserID].(string)
	if user == "" {
		return auth.Identity{}, ReasonBadUserID, fmt.Errorf("claim %s is missing, empty or not a string", s.cfg.Claims.UserID)
	}
	id.UserID = user
	if name := s.cfg.Claims.Directory; name != "" {
		if v, ok := c[name]; ok {
			dir, _ := v.(string)
			if dir == "" {
				return auth.Identity{}, ReasonBadClaims, fmt.Errorf("claim %s is empty or not a string", name)
			}
			id.Directory = dir
		}
	}
	groups, err := stringList(c, s.cfg.Claims.Groups)
	if err != nil {
		return auth.Identity{}, ReasonBadClaims, err
	}
	id.Groups = groups
	return id, "", nil
}

// numericDate reads a NumericDate claim; ok is false when it is absent.
func numericDate(c map[string]any, name string) (t time.Time, ok bool, err error) {
	v, present := c[name]
	if !present {
		return time.Time{}, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return time.Time{}, false, fmt.Errorf("claim %s is not a number", name)
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > maxNumericDate || math.IsNaN(f) {
		return time.Time{}, false, fmt.Errorf("claim %s is not a date between 1970 and 9999", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// stringList reads a claim that is a string or a list of strings; absent
// is nil.
func stringList(c map[string]any, name string) ([]string, error) {
	switch v := c[name].(type) {
	case nil:
		if _, present := c[name]; present {
			return nil, fmt.Errorf("claim %s is null", name)
		}
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for i, e := range v {
			str, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("claim %s[%d] is not a string", name, i)
			}
			out = append(out, str)
		}
		return out, nil
	}
	return nil, fmt.Errorf("claim %s is neither a string nor a list of strings", name)
}

func containsAny(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}
