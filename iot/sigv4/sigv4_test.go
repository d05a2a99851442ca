package sigv4

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	testHost   = "abc123-ats.iot.eu-west-1.amazonaws.com"
	testRegion = "eu-west-1"
	testToken  = "FwoGZXIvYXdzEB8aDH+/token=="
)

var (
	signedAt = time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)
	stsCreds = aws.Credentials{AccessKeyID: "ASIATEST", SecretAccessKey: "sts-secret", SessionToken: testToken}
	iamCreds = aws.Credentials{AccessKeyID: "AKIATEST", SecretAccessKey: "iam-secret"}
)

func testLookup(akid string) (string, string, bool) {
	switch akid {
	case stsCreds.AccessKeyID:
		return stsCreds.SecretAccessKey, stsCreds.SessionToken, true
	case iamCreds.AccessKeyID:
		return iamCreds.SecretAccessKey, "", true
	}
	return "", "", false
}

// request is the upgrade request a server sees for a presigned URL.
func request(t *testing.T, raw string) *http.Request {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Request{
		Method: http.MethodGet,
		Host:   u.Host,
		URL:    &url.URL{Path: u.Path, RawQuery: u.RawQuery},
		Header: make(http.Header),
	}
}

func presign(t *testing.T, creds aws.Credentials, region string, expires time.Duration, at time.Time) string {
	t.Helper()
	s, err := Presign(context.Background(), creds, testHost, region, expires, at)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// editQuery changes one query parameter of a URL (del when v is empty).
func editQuery(t *testing.T, raw, k, v string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if v == "" {
		q.Del(k)
	} else {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func TestPresignURL(t *testing.T) {
	s := presign(t, stsCreds, testRegion, time.Hour, signedAt)
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "wss" || u.Host != testHost || u.Path != "/mqtt" {
		t.Errorf("URL = %s, want wss://%s/mqtt?...", s, testHost)
	}
	q := u.Query()
	want := map[string]string{
		ParamAlgorithm:     "AWS4-HMAC-SHA256",
		ParamCredential:    "ASIATEST/20261123/eu-west-1/iotdevicegateway/aws4_request",
		ParamDate:          "20261123T170000Z",
		ParamExpires:       "3600",
		ParamSignedHeaders: "host",
		ParamSecurityToken: testToken,
	}
	for k, v := range want {
		if got := q.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !strings.HasSuffix(u.RawQuery, "&"+ParamSecurityToken+"="+url.QueryEscape(testToken)) {
		t.Errorf("token is not appended last: %s", u.RawQuery)
	}
	if d := presign(t, iamCreds, testRegion, 0, signedAt); strings.Contains(d, ParamSecurityToken) || !strings.Contains(d, "X-Amz-Expires=86400") {
		t.Errorf("long-term key URL = %s, want no token and X-Amz-Expires=86400", d)
	}
}

// TestSignatureKnownAnswer pins the signature to one computed by hand
// from the SigV4 recipe (canonical request, string to sign, HMAC chain),
// so a change in the SDK's canonical form would show here.
func TestSignatureKnownAnswer(t *testing.T) {
	s := presign(t, iamCreds, testRegion, time.Hour, signedAt)
	got := request(t, s).URL.Query().Get(ParamSignature)
	want := manualSignature(iamCreds.SecretAccessKey, testHost,
		"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIATEST%2F20261123%2Feu-west-1%2Fiotdevicegateway%2Faws4_request&X-Amz-Date=20261123T170000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host",
		signedAt, testRegion)
	if got != want {
		t.Errorf("signature = %s, want %s", got, want)
	}
}

func TestPresignRejects(t *testing.T) {
	ctx := context.Background()
	for name, fn := range map[string]func() error{
		"no host":   func() error { _, err := Presign(ctx, iamCreds, "", testRegion, 0, signedAt); return err },
		"host path": func() error { _, err := Presign(ctx, iamCreds, "h/x", testRegion, 0, signedAt); return err },
		"no region": func() error { _, err := Presign(ctx, iamCreds, testHost, "", 0, signedAt); return err },
		"no secret": func() error {
			_, err := Presign(ctx, aws.Credentials{AccessKeyID: "A"}, testHost, testRegion, 0, signedAt)
			return err
		},
		"too long": func() error {
			_, err := Presign(ctx, iamCreds, testHost, testRegion, MaxExpires+time.Second, signedAt)
			return err
		},
		"too short": func() error {
			_, err := Presign(ctx, iamCreds, testHost, testRegion, time.Millisecond, signedAt)
			return err
		},
		"negative": func() error { _, err := Presign(ctx, iamCreds, testHost, testRegion, -time.Hour, signedAt); return err },
	} {
		if fn() == nil {
			t.Errorf("%s: Presign succeeded, want an error", name)
		}
	}
}

func TestVerify(t *testing.T) {
	ok := presign(t, stsCreds, testRegion, time.Hour, signedAt)
	okIAM := presign(t, iamCreds, testRegion, time.Hour, signedAt)
	sig := request(t, ok).URL.Query().Get(ParamSignature)
	flipped := string(rune('0'+(sig[0]-'0'+1)%10)) + sig[1:]
	if sig[0] > '9' {
		flipped = "0" + sig[1:]
	}
	// tokenSigned is what an SDK produces by default: the token inside
	// the canonical query. AWS IoT recomputes without it, so it fails.
	tokenSigned, _, err := v4.NewSigner().PresignHTTP(context.Background(), stsCreds,
		mustRequest(t, "wss://"+testHost+"/mqtt?X-Amz-Expires=3600"), emptySHA256, Service, testRegion, signedAt)
	if err != nil {
		t.Fatal(err)
	}
	otherRegion := presign(t, stsCreds, "us-east-1", time.Hour, signedAt)
	otherService, _, err := v4.NewSigner().PresignHTTP(context.Background(), iamCreds,
		mustRequest(t, "wss://"+testHost+"/mqtt?X-Amz-Expires=3600"), emptySHA256, "iot", testRegion, signedAt)
	if err != nil {
		t.Fatal(err)
	}
	short := presign(t, iamCreds, testRegion, time.Minute, signedAt)
	unknown := presign(t, aws.Credentials{AccessKeyID: "AKIANOBODY", SecretAccessKey: "x"}, testRegion, time.Hour, signedAt)
	wrongSecret := presign(t, aws.Credentials{AccessKeyID: iamCreds.AccessKeyID, SecretAccessKey: "guess"}, testRegion, time.Hour, signedAt)

	tests := []struct {
		name    string
		url     string
		method  string
		host    string        // the Host header; empty: the URL's
		want    string        // Verify's host argument
		now     time.Duration // after signedAt
		wantErr error
	}{
		{name: "ok sts", url: ok, now: time.Minute},
		{name: "ok iam", url: okIAM, now: time.Minute},
		{name: "ok at expiry", url: ok, now: time.Hour},
		{name: "ok after signing within expiry", url: ok, now: 59 * time.Minute},
		{name: "ok clock behind within skew", url: ok, now: -5 * time.Minute},
		{name: "ok expected host", url: ok, want: testHost},
		{name: "ok expected host any case", url: ok, want: strings.ToUpper(testHost)},
		{name: "tampered signature", url: editQuery(t, ok, ParamSignature, flipped), wantErr: ErrBadSignature},
		{name: "changed expires", url: editQuery(t, ok, ParamExpires, "86400"), wantErr: ErrBadSignature},
		{name: "added parameter", url: editQuery(t, ok, "x-extra", "1"), wantErr: ErrBadSignature},
		{name: "changed date", url: editQuery(t, ok, ParamDate, "20261123T170001Z"), wantErr: ErrBadSignature},
		{name: "other host header", url: ok, host: "evil.example.com", wantErr: ErrBadSignature},
		{name: "not the expected host", url: ok, want: "other.example.com", wantErr: ErrBadSignature},
		{name: "wrong region", url: otherRegion, wantErr: ErrBadSignature},
		{name: "wrong service", url: otherService, wantErr: ErrBadSignature},
		{name: "wrong secret", url: wrongSecret, wantErr: ErrBadSignature},
		{name: "token inside signature", url: tokenSigned, wantErr: ErrBadSignature},
		{name: "expired", url: ok, now: time.Hour + time.Second, wantErr: ErrExpired},
		{name: "expired short URL past skew", url: short, now: 6 * time.Minute, wantErr: ErrExpired},
		{name: "expired a day later", url: okIAM, now: 24 * time.Hour, wantErr: ErrExpired},
		{name: "signed in the future beyond skew", url: ok, now: -5*time.Minute - time.Second, wantErr: ErrClockSkew},
		{name: "signed far in the future", url: ok, now: -24 * time.Hour, wantErr: ErrClockSkew},
		{name: "unknown key", url: unknown, wantErr: ErrUnknownKey},
		{name: "wrong session token", url: editQuery(t, ok, ParamSecurityToken, "other"), wantErr: ErrBadToken},
		{name: "missing session token", url: editQuery(t, ok, ParamSecurityToken, ""), wantErr: ErrBadToken},
		{name: "token on long-term key", url: okIAM + "&" + ParamSecurityToken + "=x", wantErr: ErrBadToken},
		{name: "token repeated", url: ok + "&" + ParamSecurityToken + "=" + url.QueryEscape(testToken), wantErr: ErrBadToken},
		{name: "missing algorithm", url: editQuery(t, ok, ParamAlgorithm, ""), wantErr: ErrMalformed},
		{name: "missing credential", url: editQuery(t, ok, ParamCredential, ""), wantErr: ErrMalformed},
		{name: "missing date", url: editQuery(t, ok, ParamDate, ""), wantErr: ErrMalformed},
		{name: "missing expires", url: editQuery(t, ok, ParamExpires, ""), wantErr: ErrMalformed},
		{name: "missing signed headers", url: editQuery(t, ok, ParamSignedHeaders, ""), wantErr: ErrMalformed},
		{name: "missing signature", url: editQuery(t, ok, ParamSignature, ""), wantErr: ErrMalformed},
		{name: "repeated signature", url: ok + "&" + ParamSignature + "=" + sig, wantErr: ErrMalformed},
		{name: "other algorithm", url: editQuery(t, ok, ParamAlgorithm, "AWS4-HMAC-SHA1"), wantErr: ErrMalformed},
		{name: "more signed headers", url: editQuery(t, ok, ParamSignedHeaders, "host;x-amz-date"), wantErr: ErrMalformed},
		{name: "bad date", url: editQuery(t, ok, ParamDate, "2026-11-23T17:00:00Z"), wantErr: ErrMalformed},
		{name: "scope date not X-Amz-Date's", url: editQuery(t, ok, ParamDate, "20261124T170000Z"), wantErr: ErrMalformed},
		{name: "short credential", url: editQuery(t, ok, ParamCredential, "ASIATEST/20261123/eu-west-1"), wantErr: ErrMalformed},
		{name: "expires zero", url: editQuery(t, ok, ParamExpires, "0"), wantErr: ErrMalformed},
		{name: "expires over 7 days", url: editQuery(t, ok, ParamExpires, "604801"), wantErr: ErrMalformed},
		{name: "expires not a number", url: editQuery(t, ok, ParamExpires, "1h"), wantErr: ErrMalformed},
		{name: "signature not hex", url: editQuery(t, ok, ParamSignature, strings.Repeat("Z", 64)), wantErr: ErrMalformed},
		{name: "other path", url: strings.Replace(ok, "/mqtt?", "/other?", 1), wantErr: ErrMalformed},
		{name: "POST", url: ok, method: http.MethodPost, wantErr: ErrMalformed},
		{name: "no query", url: "wss://" + testHost + "/mqtt", wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(t, tt.url)
			if tt.method != "" {
				r.Method = tt.method
			}
			if tt.host != "" {
				r.Host = tt.host
			}
			akid, err := Verify(context.Background(), r, tt.want, testRegion, testLookup, signedAt.Add(tt.now))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Verify = %q, %v; want error %v", akid, err, tt.wantErr)
			}
			if err == nil && akid == "" {
				t.Errorf("Verify returned no access key ID")
			}
			if err != nil && akid != "" {
				t.Errorf("Verify returned access key ID %q with an error", akid)
			}
			if err != nil && strings.Contains(err.Error(), "secret") && strings.Contains(err.Error(), stsCreds.SecretAccessKey) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}

// TestVerifyExactlyOneSentinel checks that each refusal names one reason,
// so the broker's classification is unambiguous.
func TestVerifyExactlyOneSentinel(t *testing.T) {
	all := []error{ErrMalformed, ErrExpired, ErrClockSkew, ErrUnknownKey, ErrBadToken, ErrBadSignature}
	ok := presign(t, stsCreds, testRegion, time.Hour, signedAt)
	for _, raw := range []string{editQuery(t, ok, ParamSignature, strings.Repeat("0", 64)), editQuery(t, ok, ParamDate, ""), ok} {
		_, err := Verify(context.Background(), request(t, raw), "", testRegion, testLookup, signedAt.Add(2*time.Hour))
		n := 0
		for _, s := range all {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("Verify error %v wraps %d sentinels, want 1", err, n)
		}
	}
}

func mustRequest(t *testing.T, raw string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
