package authapi

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// maxURLBytes bounds a target or return URL.
const maxURLBytes = 2048

// origin is an allowed redirect origin: scheme and host[:port], lower case.
type origin struct{ scheme, host string }

func parseOrigin(s string) (origin, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return origin{}, fmt.Errorf("%q is not an origin such as https://portal.example.com", s)
	}
	return origin{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Host)}, nil
}

// redirects decides which URLs the node may send a browser to: a path on
// the host the browser is on, a URL on one of the node's own virtual
// hosts (a host alias or the host of a listen address, any port), or one
// of the configured origins. Anything else, and anything ambiguous
// (backslashes, control characters, user info, scheme-relative //host),
// is refused: no open redirects.
type redirects struct {
	hosts   map[string]bool // host names and addresses, lower case, no port
	origins map[origin]bool
}

func newRedirects(ownHosts, allowed []string) (*redirects, error) {
	r := &redirects{hosts: map[string]bool{}, origins: map[origin]bool{}}
	for _, h := range ownHosts {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		h = strings.ToLower(strings.Trim(h, "[]"))
		if h == "" || h == "0.0.0.0" || h == "::" {
			continue // a wildcard address names no host a browser uses
		}
		r.hosts[h] = true
	}
	for _, a := range allowed {
		o, err := parseOrigin(a)
		if err != nil {
			return nil, err
		}
		r.origins[o] = true
	}
	return r, nil
}

var (
	errURLSyntax  = errors.New("not a path or an http(s) URL without user info, backslashes or control characters")
	errURLForeign = errors.New("leads to a host that is neither one of the node's virtual hosts nor an allowed origin")
)

// check returns raw, normalized, if the node may redirect to it.
func (r *redirects) check(raw string) (string, error) {
	u, err := parseTarget(raw)
	if err != nil {
		return "", err
	}
	if u.Host == "" { // a path on the browser's current host
		return u.String(), nil
	}
	if !r.ownHost(u.Host) && !r.origins[origin{scheme: u.Scheme, host: u.Host}] {
		return "", errURLForeign
	}
	return u.String(), nil
}

// ownHost reports whether hostport (a URL's or a Host header's host) is
// one of the node's own.
func (r *redirects) ownHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return r.hosts[strings.ToLower(strings.Trim(h, "[]"))]
}

// parseTarget is the syntax check of a target URL, independent of any
// host list: an absolute path ("/app/x?y") or an absolute http(s) URL.
// The API uses it when a ticket is asked for; check adds the host check.
func parseTarget(raw string) (*url.URL, error) {
	if raw == "" || len(raw) > maxURLBytes || unsafeChars(raw, true) {
		return nil, errURLSyntax
	}
	// Browsers decode before they navigate in places; an encoded
	// backslash or control character is as ambiguous as a plain one (an
	// encoded space is just a space).
	if dec, err := url.PathUnescape(raw); err != nil || unsafeChars(dec, false) {
		return nil, errURLSyntax
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" {
		return nil, errURLSyntax
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	switch {
	case u.Scheme == "" && u.Host == "":
		if !strings.HasPrefix(raw, "/") || strings.HasPrefix(u.Path, "//") || strings.HasPrefix(raw, "//") {
			return nil, errURLSyntax
		}
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "", strings.HasPrefix(u.Path, "//"):
		return nil, errURLSyntax
	}
	return u, nil
}

// unsafeChars reports control characters, backslashes and, with space,
// spaces in s.
func unsafeChars(s string, space bool) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f || c == '\\' || space && c == ' ' {
			return true
		}
	}
	return false
}
