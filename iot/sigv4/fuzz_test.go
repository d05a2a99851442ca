package sigv4

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary hosts and queries to Verify: it must not
// panic, and a refusal must wrap exactly one sentinel.
func FuzzVerify(f *testing.F) {
	ok, err := Presign(context.Background(), stsCreds, testHost, testRegion, time.Hour, signedAt)
	if err != nil {
		f.Fatal(err)
	}
	u, _ := url.Parse(ok)
	f.Add(testHost, u.RawQuery)
	f.Add(testHost, "")
	f.Add("", "X-Amz-Credential=%2F%2F%2F%2F&X-Amz-Date=;")
	all := []error{ErrMalformed, ErrExpired, ErrClockSkew, ErrUnknownKey, ErrBadToken, ErrBadSignature}
	f.Fuzz(func(t *testing.T, host, rawQuery string) {
		r := &http.Request{Method: http.MethodGet, Host: host, URL: &url.URL{Path: Path, RawQuery: rawQuery}, Header: http.Header{}}
		akid, err := Verify(context.Background(), r, "", testRegion, testLookup, signedAt.Add(time.Minute))
		if err == nil {
			if akid == "" {
				t.Fatal("accepted without an access key ID")
			}
			return
		}
		n := 0
		for _, s := range all {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("error %v wraps %d sentinels", err, n)
		}
	})
}
