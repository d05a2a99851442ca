package clientapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/keystore"
)

func TestVirtualHosts(t *testing.T) {
	r := newRig(t)
	h1only := tlsHost("h1only")
	h1only.HTTP2 = new(bool)
	secure := tlsHost("secure")
	secure.Listen = Addresses{"127.0.0.1:0", "127.0.0.2:0"}
	srv := r.start(t, Config{VirtualHosts: []VirtualHost{
		{Name: "plain", Listen: Addresses{"127.0.0.1:0"}, HostAliases: []string{"edge.example"}},
		secure, h1only,
	}})
	urls := srv.URLs()
	second := "https://" + srv.groups["secure"].addrs[1]
	tests := []struct {
		name, url, host string
		h2              bool
		wantCode        int
		wantProto       int
		wantBody        string
	}{
		{"plain healthz via alias", urls["plain"] + "/healthz", "edge.example:8080", false, 200, 1, "ok"},
		{"plain, unknown host", urls["plain"] + "/healthz", "other.example", false, 421, 1, "unknown_host"},
		{"tls healthz over HTTP/2", urls["secure"] + "/healthz", "", true, 200, 2, "ok"},
		{"tls healthz over HTTP/1.1", urls["secure"] + "/healthz", "", false, 200, 1, "ok"},
		{"second address", second + "/healthz", "", true, 200, 2, "ok"},
		{"tls, unknown path", urls["secure"] + "/nope", "", true, 404, 2, ""},
		{"http2 off", urls["h1only"] + "/healthz", "", true, 200, 1, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tt.url, nil)
			if tt.host != "" {
				req.Host = tt.host
			}
			resp, err := r.client("", tt.h2).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode || resp.ProtoMajor != tt.wantProto || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("%d HTTP/%d %q, want %d HTTP/%d with %q", resp.StatusCode, resp.ProtoMajor, body, tt.wantCode, tt.wantProto, tt.wantBody)
			}
		})
	}
	if !strings.HasPrefix(urls["secure"], "https://127.0.0.1:") || strings.HasSuffix(urls["secure"], ":0") {
		t.Errorf("URL of the TLS host = %q, want https with the bound port", urls["secure"])
	}
}

func TestNewNamesTheSettingThatDoesNotWork(t *testing.T) {
	r := newRig(t)
	engine := TargetEndpoint{Name: "engine", URL: "https://127.0.0.1:1", SSL: keystore.SSL{Enabled: on(), Truststore: "ca", MinVersion: "1.2"}}
	route := func(name, match, target string) Route {
		return Route{Name: name, Match: match, Target: target, Action: "a", Resource: Resource{Type: "app", ID: "x"}}
	}
	tests := []struct {
		name   string
		vh     VirtualHost
		authz  bool
		target TargetEndpoint
		field  string
		want   string
	}{
		{"reference that does not resolve", VirtualHost{Name: "a", Listen: Addresses{"127.0.0.1:0"}, SSL: keystore.SSL{Enabled: on(), Keystore: "ref://gone", MinVersion: "1.2"}},
			true, engine, "clients.virtual_hosts[0].ssl", `reference "gone"`},
		{"wildcard address", VirtualHost{Name: "a", Listen: Addresses{"0.0.0.0:0"}}, true, engine, "clients.virtual_hosts[0].listen", "allow_wildcard"},
		{"empty port host", VirtualHost{Name: "a", Listen: Addresses{":0"}}, true, engine, "clients.virtual_hosts[0].listen", "allow_wildcard"},
		{"no address", VirtualHost{Name: "a"}, true, engine, "clients.virtual_hosts[0].listen", "required"},
		{"routes without an authorizer", VirtualHost{Name: "a", Listen: Addresses{"127.0.0.1:0"}, Routes: []Route{route("r", "/", "engine")}},
			false, engine, "clients.virtual_hosts[0].routes", "control plane"},
		{"unknown target", VirtualHost{Name: "a", Listen: Addresses{"127.0.0.1:0"}, Routes: []Route{route("r", "/", "db")}},
			true, engine, "clients.virtual_hosts[0].routes[0].target", `"db"`},
		{"route clashing with /healthz", VirtualHost{Name: "a", Listen: Addresses{"127.0.0.1:0"}, Routes: []Route{route("r", "GET /healthz", "engine")}},
			true, engine, "clients.virtual_hosts[0].routes[0].match", "conflicts"},
		{"two solutions in one entry", VirtualHost{Name: "a", Listen: Addresses{"127.0.0.1:0"}, Authentication: []Solution{{}}},
			true, engine, "clients.virtual_hosts[0].authentication[0]", "exactly one"},
		{"target truststore missing", VirtualHost{Name: "a", Listen: Addresses{"127.0.0.1:0"}}, true,
			TargetEndpoint{Name: "engine", URL: "https://127.0.0.1:1", SSL: keystore.SSL{Enabled: on(), Truststore: "nope", MinVersion: "1.2"}},
			"clients.target_endpoints[0]", "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deps := r.deps()
			deps.Registerer = nil
			if !tt.authz {
				deps.Authorizer = nil
			}
			_, err := New(Config{VirtualHosts: []VirtualHost{tt.vh}, TargetEndpoints: []TargetEndpoint{tt.target}}, deps)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want a FieldError for %s about %q", err, tt.field, tt.want)
			}
		})
	}
}

func TestListenConflictFailsRunAndReleases(t *testing.T) {
	r := newRig(t)
	first := r.start(t, Config{VirtualHosts: []VirtualHost{{Name: "a", Listen: Addresses{"127.0.0.1:0"}}}})
	taken := strings.TrimPrefix(first.URLs()["a"], "http://")
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	srv, err := New(Config{VirtualHosts: []VirtualHost{{Name: "b", Listen: Addresses{freeAddr, taken}}}}, Deps{Keystores: r.stores, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "virtual host b: listen "+taken) {
		t.Fatalf("Run on a taken address = %v", err)
	}
	ln, err := net.Listen("tcp", freeAddr)
	if err != nil {
		t.Fatalf("the address bound before the failure was not released: %v", err)
	}
	ln.Close()
}

// TestCertificateFollowsTheReference: repointing the virtual host's
// reference changes the certificate of the next handshake, with no reload
// and no restart.
func TestCertificateFollowsTheReference(t *testing.T) {
	r := newRig(t)
	key, cert := r.pki.issue(t, "hub.example")
	must(t, r.stores.CreateStore("hub2", keystore.KindKeystore))
	must(t, r.stores.PutEntry("hub2", "tls", key, []*x509.Certificate{cert}))
	must(t, r.stores.SetRef("hub-tls", "hub"))
	vh := tlsHost("hub")
	vh.SSL.Keystore = "ref://hub-tls"
	srv := r.start(t, Config{VirtualHosts: []VirtualHost{vh}})
	served := func() string {
		t.Helper()
		c := r.client("", false)
		c.Transport.(*http.Transport).DisableKeepAlives = true
		resp, err := c.Get(srv.URLs()["hub"] + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	before := served()
	must(t, r.stores.SetRef("hub-tls", "hub2"))
	if got := served(); got != cert.SerialNumber.String() || got == before {
		t.Errorf("serial after repointing %s (before %s), want %s", got, before, cert.SerialNumber)
	}
}

// TestClientLimits: a header block over the limit gets 431; a client that
// never finishes its headers is cut off after read_header; a wildcard
// address binds when allowed, with a warning.
func TestClientLimits(t *testing.T) {
	r := newRig(t)
	vh := tlsHost("hub")
	vh.Limits.MaxHeaderBytes = 8 << 10
	vh.Timeouts.ReadHeader = 200 * time.Millisecond
	wild := VirtualHost{Name: "wild", Listen: Addresses{"0.0.0.0:0"}, AllowWildcard: true}
	srv := r.start(t, Config{VirtualHosts: []VirtualHost{vh, wild}})
	req, _ := http.NewRequest("GET", srv.URLs()["hub"]+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 16<<10))
	resp, err := r.client("", false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized headers: %d, want 431", resp.StatusCode)
	}

	pool := x509.NewCertPool()
	pool.AddCert(r.pki.cert)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(srv.URLs()["hub"], "https://"), &tls.Config{RootCAs: pool, ServerName: "hub.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: hub.example\r\n") // and never the blank line
	conn.SetReadDeadline(time.Now().Add(time.Minute))                      // a bound for a broken server only
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("slow client: %v, want the server to close the connection", err)
	}

	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URLs()["wild"], "http://"))
	resp, err = http.Get("http://127.0.0.1:" + port + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(r.logs.lines("virtual host binds every interface (allow_wildcard)")) != 1 {
		t.Errorf("no wildcard warning logged")
	}
}
