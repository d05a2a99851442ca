package headerauth

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/clientapi/auth"
)

func good() Config {
	return Config{UserHeader: "X-Remote-User", DirectoryHeader: "X-Remote-Directory", GroupsHeader: "X-Remote-Groups",
		TrustedProxies: []string{"10.0.0.7", "192.168.1.0/24", "fd00::/64"}}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		fields []string // the FieldErrors, in order
	}{
		{"good", func(*Config) {}, nil},
		{"no user header", func(c *Config) { c.UserHeader = "" }, []string{"user_header"}},
		{"bad header name", func(c *Config) { c.GroupsHeader = "X Groups" }, []string{"groups_header"}},
		{"a header HTTP needs", func(c *Config) { c.UserHeader = "authorization" }, []string{"user_header"}},
		{"a content header", func(c *Config) { c.DirectoryHeader = "Content-Language" }, []string{"directory_header"}},
		{"the same header twice", func(c *Config) { c.GroupsHeader = "x-remote-user" }, []string{"groups_header"}},
		{"directory with a control character", func(c *Config) { c.Directory = "a\nb" }, []string{"directory"}},
		{"no trusted proxies", func(c *Config) { c.TrustedProxies = nil }, []string{"trusted_proxies"}},
		{"a proxy that is not an address", func(c *Config) { c.TrustedProxies = []string{"10.0.0.7", "proxy.example"} }, []string{"trusted_proxies[1]"}},
		{"trusting everyone", func(c *Config) { c.TrustedProxies = []string{"0.0.0.0/0", "::/0"} }, []string{"trusted_proxies[0]", "trusted_proxies[1]"}},
		{"a long name", func(c *Config) { c.Name = strings.Repeat("n", 65) }, []string{"name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.change(&c)
			err := c.Validate()
			var got []string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var fe *auth.FieldError
					if !errors.As(e, &fe) {
						t.Fatalf("%v is not a FieldError", e)
					}
					got = append(got, fe.Field)
				}
			}
			if diff := cmp.Diff(tt.fields, got); diff != "" {
				t.Errorf("fields (-want +got):\n%s\nerror: %v", diff, err)
			}
			if _, nerr := New(c, Deps{}); (nerr == nil) != (err == nil) {
				t.Errorf("New = %v, Validate = %v: want both or neither", nerr, err)
			}
		})
	}
}

func request(remote string, h http.Header) *http.Request {
	r, _ := http.NewRequest("GET", "https://hub.example/x", nil)
	r.RemoteAddr = remote
	r.Header = h
	return r
}

func TestAuthenticate(t *testing.T) {
	var logs bytes.Buffer
	now := time.Unix(1_800_000_000, 0)
	s, err := New(Config{Name: "portal", UserHeader: "x-remote-user", DirectoryHeader: "X-Remote-Directory", GroupsHeader: "X-Remote-Groups",
		TrustedProxies: []string{"10.0.0.7", "fd00::/64"}}, Deps{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		remote string
		header http.Header
		want   auth.Result // Err ignored
	}{
		{"nothing", "10.0.0.7:5000", nil, auth.Result{Outcome: auth.NoCredentials}},
		{"user from the proxy", "10.0.0.7:5000", http.Header{"X-Remote-User": {" alice "}},
			auth.Result{Outcome: auth.Authenticated, Identity: auth.Identity{UserID: "alice", Directory: "portal", Solution: "portal"}}},
		{"IPv6 proxy, directory and groups over two lines", "[fd00::9]:5000", http.Header{"X-Remote-User": {"bob"}, "X-Remote-Directory": {"corp"}, "X-Remote-Groups": {"a, b", "c"}},
			auth.Result{Outcome: auth.Authenticated, Identity: auth.Identity{UserID: "bob", Directory: "corp", Groups: []string{"a", "b", "c"}, Solution: "portal"}}},
		{"IPv4-mapped proxy address", "[::ffff:10.0.0.7]:5000", http.Header{"X-Remote-User": {"alice"}},
			auth.Result{Outcome: auth.Authenticated, Identity: auth.Identity{UserID: "alice", Directory: "portal", Solution: "portal"}}},
		{"empty directory header keeps the default", "10.0.0.7:5000", http.Header{"X-Remote-User": {"alice"}, "X-Remote-Directory": {""}},
			auth.Result{Outcome: auth.Authenticated, Identity: auth.Identity{UserID: "alice", Directory: "portal", Solution: "portal"}}},
		{"from another address", "10.0.0.8:5000", http.Header{"X-Remote-User": {"alice"}}, auth.Result{Outcome: auth.Refused, Reason: ReasonUntrustedSource}},
		{"directory alone from another address", "10.0.0.8:5000", http.Header{"X-Remote-Directory": {"corp"}}, auth.Result{Outcome: auth.Refused, Reason: ReasonUntrustedSource}},
		{"a forwarded-for naming the proxy is not the peer", "10.0.0.8:5000", http.Header{"X-Remote-User": {"alice"}, "X-Forwarded-For": {"10.0.0.7"}},
			auth.Result{Outcome: auth.Refused, Reason: ReasonUntrustedSource}},
		{"groups alone from the proxy", "10.0.0.7:5000", http.Header{"X-Remote-Groups": {"a"}}, auth.Result{Outcome: auth.NoCredentials}},
		{"empty user", "10.0.0.7:5000", http.Header{"X-Remote-User": {" "}}, auth.Result{Outcome: auth.Refused, Reason: ReasonInvalidValue}},
		{"two users", "10.0.0.7:5000", http.Header{"X-Remote-User": {"a", "b"}}, auth.Result{Outcome: auth.Refused, Reason: ReasonInvalidValue}},
		{"two directories", "10.0.0.7:5000", http.Header{"X-Remote-User": {"a"}, "X-Remote-Directory": {"x", "y"}}, auth.Result{Outcome: auth.Refused, Reason: ReasonInvalidValue}},
		{"not UTF-8", "10.0.0.7:5000", http.Header{"X-Remote-User": {"a\xffb"}}, auth.Result{Outcome: auth.Refused, Reason: ReasonInvalidValue}},
		{"DEL", "10.0.0.7:5000", http.Header{"X-Remote-User": {"a\x7fb"}}, auth.Result{Outcome: auth.Refused, Reason: ReasonInvalidValue}},
		{"C1 control", "10.0.0.7:5000", http.Header{"X-Remote-User": {"a\u0085b"}}, auth.Result{Outcome: auth.Refused, Reason: ReasonInvalidValue}},
		{"a group too long", "10.0.0.7:5000", http.Header{"X-Remote-User": {"a"}, "X-Remote-Groups": {strings.Repeat("g", MaxValueBytes+1)}},
			auth.Result{Outcome: auth.Refused, Reason: ReasonInvalidValue}},
		{"user at the limit", "10.0.0.7:5000", http.Header{"X-Remote-User": {strings.Repeat("u", MaxValueBytes)}},
			auth.Result{Outcome: auth.Authenticated, Identity: auth.Identity{UserID: strings.Repeat("u", MaxValueBytes), Directory: "portal", Solution: "portal"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.Authenticate(request(tt.remote, tt.header))
			if (got.Outcome == auth.Refused) != (got.Err != nil) {
				t.Errorf("Err %v with outcome %v: want an error exactly with a refusal", got.Err, got.Outcome)
			}
			got.Err = nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
	if n := strings.Count(logs.String(), "not a trusted proxy"); n != 1 {
		t.Errorf("%d warnings for 10.0.0.8's three attempts within a minute, want 1:\n%s", n, logs.String())
	}
	if diff := cmp.Diff([]string{"X-Remote-User", "X-Remote-Directory", "X-Remote-Groups"}, s.Headers()); diff != "" {
		t.Errorf("Headers (-want +got):\n%s", diff)
	}
}

// FuzzAuthenticate: whatever the headers hold, no panic; a peer outside
// the trusted proxies is never authenticated; an identity only carries
// bounded, printable UTF-8.
func FuzzAuthenticate(f *testing.F) {
	f.Add("10.0.0.7:1", "alice", "corp", "a,b")
	f.Add("10.0.0.8:1", "alice", "", "")
	f.Add("[::1]:1", "", "x", "\x00")
	f.Add("garbage", "a\tb", "\xff", strings.Repeat(",", 100))
	s, err := New(Config{UserHeader: "U", DirectoryHeader: "D", GroupsHeader: "G", TrustedProxies: []string{"10.0.0.7"}}, Deps{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, user, dir, groups string) {
		h := http.Header{}
		for k, v := range map[string]string{"U": user, "D": dir, "G": groups} {
			if v != "" {
				h[k] = strings.Split(v, "\n")
			}
		}
		res := s.Authenticate(request(remote, h))
		if res.Outcome != auth.Authenticated {
			return
		}
		if !strings.HasPrefix(remote, "10.0.0.7:") && !strings.HasPrefix(remote, "[::ffff:10.0.0.7]:") {
			t.Fatalf("authenticated from %q", remote)
		}
		id := res.Identity
		if len(id.Groups) > MaxGroups {
			t.Fatalf("%d groups", len(id.Groups))
		}
		for _, v := range append([]string{id.UserID, id.Directory}, id.Groups...) {
			if v == "" && v == id.UserID || len(v) > MaxValueBytes || !utf8.ValidString(v) || strings.ContainsFunc(v, badRune) {
				t.Fatalf("identity value %q out of bounds", v)
			}
		}
	})
}

// BenchmarkAuthenticate: the solution's cost per request, without its
// headers (every request a chain passes on) and with a trusted proxy's.
func BenchmarkAuthenticate(b *testing.B) {
	s, err := New(good(), Deps{})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		h    http.Header
	}{
		{"absent", http.Header{"Authorization": {"Bearer x"}, "Accept": {"*/*"}}},
		{"trusted", http.Header{"X-Remote-User": {"alice"}, "X-Remote-Directory": {"corp"}, "X-Remote-Groups": {"sales, staff"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := request("10.0.0.7:5000", bc.h)
			b.ReportAllocs()
			for b.Loop() {
				if res := s.Authenticate(r); res.Outcome == auth.Refused {
					b.Fatal(res.Err)
				}
			}
		})
	}
}
