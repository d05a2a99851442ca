// Package headerauth is the header authentication solution: a reverse
// proxy in front of the node (a portal, a corporate SSO gateway) has
// authenticated the user and names them in a request header. The node
// believes that header only when the TCP peer is one of the solution's
// trusted proxies; from any other peer the same header is a spoofing
// attempt, refused and logged. The client API removes the configured
// headers from every request before proxying, so a backend never sees
// what a client sent there.
package headerauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/loglimit"
)

// Kind is the solution's configured kind.
const Kind = "header"

// Reason ids of the solution's refusals.
const (
	// ReasonUntrustedSource: a user header came from a peer that is not a
	// trusted proxy.
	ReasonUntrustedSource = "untrusted_header_source"
	// ReasonInvalidValue: a trusted proxy sent a value out of bounds (too
	// long, control characters, repeated header, too many groups).
	ReasonInvalidValue = "invalid_header_value"
)

// warnEvery spaces out the warning about one untrusted peer.
const warnEvery = time.Minute

// Log keys of the warning (the client API's audit line uses the same).
const (
	logKeySolution = "solution"
	logKeyClient   = "client"
	logKeyHeader   = "header"
)

// Deps are what the solution needs from its owner.
type Deps struct {
	// Logger receives the (rate-limited) warnings about spoofing attempts.
	// Nil discards them.
	Logger *slog.Logger
	// Now is the clock of the rate limit. Nil means time.Now.
	Now func() time.Time
}

// Solution authenticates requests by the headers a trusted proxy sets.
// Safe for concurrent use.
type Solution struct {
	cfg      Config
	user     string // canonical header names; "" when not configured
	dir      string
	groups   string
	proxies  []netip.Prefix
	warnings *loglimit.Limiter
}

// New checks cfg and builds the solution.
func New(cfg Config, deps Deps) (*Solution, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Solution{cfg: cfg, user: canonical(cfg.UserHeader), dir: canonical(cfg.DirectoryHeader), groups: canonical(cfg.GroupsHeader),
		warnings: loglimit.New(deps.Logger, warnEvery, deps.Now)}
	for _, p := range cfg.TrustedProxies {
		pfx, _ := parsePrefix(p) // Validate checked it
		s.proxies = append(s.proxies, pfx)
	}
	return s, nil
}

func canonical(h string) string {
	if h == "" {
		return ""
	}
	return textproto.CanonicalMIMEHeaderKey(h)
}

func (s *Solution) Kind() string { return Kind }
func (s *Solution) Name() string { return s.cfg.Name }

// Headers are the canonical names of the headers the solution reads: the
// client API strips them before proxying.
func (s *Solution) Headers() []string {
	var out []string
	for _, h := range []string{s.user, s.dir, s.groups} {
		if h != "" {
			out = append(out, h)
		}
	}
	return out
}

// Authenticate reads the user from the headers when the peer is a trusted
// proxy. A request without any of the headers has no credentials for this
// solution; one with them from another peer is refused.
func (s *Solution) Authenticate(r *http.Request) auth.Result {
	present := s.present(r.Header)
	if present == "" {
		return auth.Result{Outcome: auth.NoCredentials}
	}
	peer := peerAddr(r.RemoteAddr)
	if !s.trusts(peer) {
		s.warnings.Warn("untrusted:"+peer.String(), "user header from an address that is not a trusted proxy: refused",
			logKeySolution, s.cfg.Name, logKeyClient, peer.String(), logKeyHeader, present)
		return auth.Result{Outcome: auth.Refused, Reason: ReasonUntrustedSource,
			Err: fmt.Errorf("header %s from %s, which is not a trusted proxy of solution %s", present, peer, s.cfg.Name)}
	}
	users := r.Header[s.user]
	if len(users) == 0 {
		// The proxy named no user: it did not authenticate one, and the
		// chain goes on (the other headers are stripped all the same).
		return auth.Result{Outcome: auth.NoCredentials}
	}
	id, err := s.identity(r.Header, users)
	if err != nil {
		return auth.Result{Outcome: auth.Refused, Reason: ReasonInvalidValue, Err: err}
	}
	return auth.Result{Outcome: auth.Authenticated, Identity: id}
}

// present is the first configured header the request carries, or "".
func (s *Solution) present(h http.Header) string {
	for _, name := range []string{s.user, s.dir, s.groups} {
		if name == "" {
			continue
		}
		if _, ok := h[name]; ok {
			return name
		}
	}
	return ""
}

func (s *Solution) trusts(a netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// identity checks and reads the headers of a trusted proxy. Errors name
// the header and the problem, never the value.
func (s *Solution) identity(h http.Header, users []string) (auth.Identity, error) {
	user, err := single(s.user, users)
	if err != nil {
		return auth.Identity{}, err
	}
	if user == "" {
		return auth.Identity{}, fmt.Errorf("header %s: empty", s.user)
	}
	id := auth.Identity{UserID: user, Directory: s.cfg.Directory, Solution: s.cfg.Name}
	if s.dir != "" {
		if v, ok := h[s.dir]; ok {
			d, err := single(s.dir, v)
			if err != nil {
				return auth.Identity{}, err
			}
			if d != "" {
				id.Directory = d
			}
		}
	}
	if s.groups != "" {
		if id.Groups, err = groups(s.groups, h[s.groups]); err != nil {
			return auth.Identity{}, err
		}
	}
	return id, nil
}

// single is the one value of a header that must appear once: a second
// line could be a client's value that a proxy failed to remove.
func single(name string, vs []string) (string, error) {
	if len(vs) != 1 {
		return "", fmt.Errorf("header %s: sent %d times, want once", name, len(vs))
	}
	v := strings.TrimSpace(vs[0])
	if err := checkValue(v); err != nil {
		return "", fmt.Errorf("header %s: %w", name, err)
	}
	return v, nil
}

// groups splits comma-separated groups over every line of the header.
func groups(name string, vs []string) ([]string, error) {
	var out []string
	for _, v := range vs {
		for g := range strings.SplitSeq(v, ",") {
			g = strings.TrimSpace(g)
			if g == "" {
				continue
			}
			if err := checkValue(g); err != nil {
				return nil, fmt.Errorf("header %s: a group: %w", name, err)
			}
			if len(out) == MaxGroups {
				return nil, fmt.Errorf("header %s: more than %d groups", name, MaxGroups)
			}
			out = append(out, g)
		}
	}
	return out, nil
}

var errBadValue = errors.New("not valid UTF-8, or has control characters")

// checkValue bounds a user id, directory or group.
func checkValue(v string) error {
	if len(v) > MaxValueBytes {
		return fmt.Errorf("%d bytes, more than %d", len(v), MaxValueBytes)
	}
	if !utf8.ValidString(v) || strings.ContainsFunc(v, badRune) {
		return errBadValue
	}
	return nil
}

func badRune(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }

// peerAddr is the TCP peer of the request.
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, _ := net.SplitHostPort(remote)
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

var _ auth.Solution = (*Solution)(nil)
