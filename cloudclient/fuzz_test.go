package cloudclient

import (
	"net/http"
	"testing"
	"time"
)

func FuzzParseCertificates(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("garbage"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := parseCertificates(b)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Add("120")
	f.Add("-5")
	f.Add("99999999999999999999")
	f.Add(now.Add(time.Hour).Format(http.TimeFormat))
	f.Fuzz(func(t *testing.T, v string) {
		if d := parseRetryAfter(v, now); d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %s", v, d)
		}
	})
}
