package headerauth

import (
	"errors"
	"fmt"
	"net/netip"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// Defaults and bounds, named once.
const (
	DefaultName = "header"
	// MaxValueBytes bounds the user id, the directory and each group.
	MaxValueBytes = 256
	// MaxGroups bounds the groups one request may carry.
	MaxGroups = 64
	// maxNameBytes bounds the solution's name.
	maxNameBytes = 64
)

// Config is one header solution: the configuration's
// clients.virtual_hosts[].authentication[].header entry (agent/config
// composes it through clientapi). A reverse proxy in front of the node
// authenticates the user and names them in a header; the node believes the
// header only from the proxy's address.
type Config struct {
	// Name identifies the solution in logs and metrics. Default "header".
	Name string `yaml:"name"`
	// UserHeader carries the user id. Required. Whatever the configuration
	// names is removed from every request before proxying, so it may not
	// be a header HTTP itself needs (Host, Authorization, Cookie, ...).
	UserHeader string `yaml:"user_header"`
	// DirectoryHeader, when set, carries the user's directory.
	DirectoryHeader string `yaml:"directory_header"`
	// Directory is the directory when no DirectoryHeader is configured or
	// the request carries none. Default: the solution's name.
	Directory string `yaml:"directory"`
	// GroupsHeader, when set, carries the user's groups, comma-separated.
	GroupsHeader string `yaml:"groups_header"`
	// TrustedProxies are the addresses (CIDRs or single addresses) of the
	// proxies allowed to send these headers, matched against the TCP peer
	// (never against X-Forwarded-For). Required; a prefix that matches
	// every address (0.0.0.0/0, ::/0) is refused.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// reserved are headers HTTP or the node itself relies on: stripping them
// from every request, as the configured names are, would break requests.
var reserved = map[string]bool{
	"Host": true, "Authorization": true, "Cookie": true, "Connection": true, "Content-Length": true,
	"Content-Type": true, "Content-Encoding": true, "Transfer-Encoding": true, "Te": true, "Trailer": true,
	"Upgrade": true, "Expect": true, "Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true,
	"X-Forwarded-Proto": true, "Origin": true, "Accept": true, "Range": true,
}

// Validate reports every problem as a joined *auth.FieldError; it changes
// nothing.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &auth.FieldError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	if len(c.Name) > maxNameBytes || strings.ContainsFunc(c.Name, badRune) {
		add("name", "%q: at most %d printable characters", c.Name, maxNameBytes)
	}
	seen := map[string]string{}
	for _, h := range []struct{ field, name string }{{"user_header", c.UserHeader}, {"directory_header", c.DirectoryHeader}, {"groups_header", c.GroupsHeader}} {
		switch ck := textproto.CanonicalMIMEHeaderKey(h.name); {
		case h.name == "" && h.field == "user_header":
			add(h.field, "required: the header the trusted proxy names the user in, e.g. X-Remote-User")
		case h.name == "":
		case !httpguts.ValidHeaderFieldName(h.name):
			add(h.field, "%q is not a valid header name", h.name)
		case reserved[ck] || strings.HasPrefix(ck, "Content-") || strings.HasPrefix(ck, "Sec-"):
			add(h.field, "%q is a header HTTP needs; it cannot carry the user (it is removed from every request)", h.name)
		case seen[ck] != "":
			add(h.field, "%q is already %s", h.name, seen[ck])
		default:
			seen[ck] = h.field
		}
	}
	if err := checkValue(c.Directory); err != nil {
		add("directory", "%v", err)
	}
	if len(c.TrustedProxies) == 0 {
		add("trusted_proxies", "required: the addresses of the proxies that may send the user headers, e.g. [10.0.0.7/32]")
	}
	for i, p := range c.TrustedProxies {
		pfx, err := parsePrefix(p)
		switch {
		case err != nil:
			add(fmt.Sprintf("trusted_proxies[%d]", i), "%q is not a CIDR such as 10.0.0.7/32 or an address", p)
		case pfx.Bits() == 0:
			add(fmt.Sprintf("trusted_proxies[%d]", i), "%q trusts every address; name the proxies", p)
		}
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Directory == "" {
		c.Directory = c.Name
	}
	return c
}

// parsePrefix reads a CIDR, or a single address as its /32 or /128.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
