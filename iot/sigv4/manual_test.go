package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// manualSignature computes a SigV4 query signature for GET /mqtt from
// first principles (no SDK), for a known-answer test. canonicalQuery is
// already sorted and RFC 3986-encoded, without X-Amz-Signature.
func manualSignature(secret, host, canonicalQuery string, at time.Time, region string) string {
	canonical := strings.Join([]string{
		"GET",
		"/mqtt",
		canonicalQuery,
		"host:" + host + "\n",
		"host",
		emptySHA256,
	}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	day := at.UTC().Format(scopeFormat)
	toSign := strings.Join([]string{
		algorithm,
		at.UTC().Format(dateFormat),
		day + "/" + region + "/" + Service + "/" + terminator,
		hex.EncodeToString(sum[:]),
	}, "\n")
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	key := mac([]byte("AWS4"+secret), day)
	key = mac(key, region)
	key = mac(key, Service)
	key = mac(key, terminator)
	return hex.EncodeToString(mac(key, toSign))
}
