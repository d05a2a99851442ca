package config

import (
	"errors"
	"slices"

	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/edgefort/edgefort/clientapi"
	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/oidcauth"
)

// validateClients checks the clients section: virtual hosts, their
// solutions and routes, and target endpoints. Routes need authorization,
// which needs the control plane.
func validateClients(c Clients, p *problems, cloudEnabled bool, shutdown time.Duration) {
	targets := map[string]bool{}
	for i, t := range c.TargetEndpoints {
		path := index("clients.target_endpoints", i)
		checkName(p, path+".name", t.Name, targets)
		if checkRequiredURL(p, path+".url", t.URL, true, "http", "https") && hasScheme(t.URL, "http") && IsEnabled(t.SSL.Enabled, false) {
			p.add(0, path+".ssl.enabled", "TLS is enabled but the url is http://; use https://")
		}
		validateSSL(t.SSL, p, path+".ssl", outboundTarget)
	}
	names := map[string]bool{}
	listens := map[string]string{}
	validateAuthAPI(p, c.AuthAPI, listens)
	for i, vh := range c.VirtualHosts {
		path := index("clients.virtual_hosts", i)
		checkName(p, path+".name", vh.Name, names)
		validateListen(p, path, vh, listens)
		for j, h := range vh.HostAliases {
			if !validHostname(h) {
				p.add(0, index(path+".host_aliases", j), "%q is not a valid host name", h)
			}
		}
		validateSSL(vh.SSL, p, path+".ssl", inbound)
		validateVirtualHostLimits(p, path, vh)
		if vh.Timeouts.Drain >= shutdown {
			p.add(0, path+".timeouts.drain", "%s is not shorter than supervisor.shutdown_timeout (%s), which bounds the whole stop", vh.Timeouts.Drain, shutdown)
		}
		for j, cidr := range vh.TrustedProxies {
			if _, err := netip.ParsePrefix(cidr); err != nil {
				if _, err := netip.ParseAddr(cidr); err != nil {
					p.add(0, index(path+".trusted_proxies", j), "%q is not a CIDR such as 10.0.0.0/8 or an address", cidr)
				}
			}
		}
		validateSolutions(p, path, vh.Name, vh.Authentication, c.AuthAPI.Listen != "")
		validateIdentity(p, path+".identity", vh.Identity)
		validateRoutes(p, path, vh.Routes, targets)
		if len(vh.Routes) > 0 && !cloudEnabled {
			p.add(0, path+".routes", "routes are authorized by the control plane, which is off; set cloud.enabled: true")
		}
	}
}

func validateListen(p *problems, path string, vh VirtualHost, listens map[string]string) {
	if len(vh.Listen) == 0 {
		p.add(0, path+".listen", "required (host:port on the private network)")
	}
	for j, addr := range vh.Listen {
		ap := index(path+".listen", j)
		if len(vh.Listen) == 1 {
			ap = path + ".listen"
		}
		switch {
		case listens[addr] != "":
			p.add(0, ap, "%q is already the address of virtual host %q", addr, listens[addr])
		case !checkAddress(p, ap, addr, true): // port 0 takes a free port, for tests and `edgefort-dev`
		case clientapi.IsWildcard(addr) && !vh.AllowWildcard:
			p.add(0, ap, "%q binds every interface; name the private network's address, or set allow_wildcard: true", addr)
		case !strings.HasSuffix(addr, ":0"):
			listens[addr] = vh.Name
		}
	}
}

func validateVirtualHostLimits(p *problems, path string, vh VirtualHost) {
	checkRange(p, path+".timeouts.read_header", vh.Timeouts.ReadHeader, 100*time.Millisecond, 10*time.Minute)
	checkRange(p, path+".timeouts.idle", vh.Timeouts.Idle, time.Second, 24*time.Hour)
	checkRange(p, path+".timeouts.drain", vh.Timeouts.Drain, 0, 10*time.Minute)
	if n := vh.Limits.MaxHeaderBytes; n < 4<<10 || n > 1<<20 {
		p.add(0, path+".limits.max_header_bytes", "%d is out of range (4096 to 1048576)", n)
	}
	if n := vh.Limits.MaxRequestBodyBytes; n < 1 {
		p.add(0, path+".limits.max_request_body_bytes", "%d must be positive", n)
	}
	if r := vh.FailedAuthLimit; r.PerSecond <= 0 || r.PerSecond > 1e6 {
		p.add(0, path+".failed_auth_limit.per_second", "%g is out of range (above 0, at most 1000000)", r.PerSecond)
	}
	if b := vh.FailedAuthLimit.Burst; b < 1 || b > 1e6 {
		p.add(0, path+".failed_auth_limit.burst", "%d is out of range (1 to 1000000)", b)
	}
}

func validateSolutions(p *problems, path, vhost string, sols []clientapi.Solution, authAPI bool) {
	sessions := 0
	samlPaths := map[string]int{}
	oidcPaths := map[string]int{}
	for j, s := range sols {
		sp := index(path+".authentication", j)
		if kinds := s.Kinds(); len(kinds) != 1 {
			p.add(0, sp, "set exactly one solution: %s", clientapi.SolutionKindList)
			continue
		}
		var sub string
		var err error
		switch {
		case s.JWT != nil:
			sub, err = ".jwt", s.JWT.Validate()
		case s.Anonymous != nil:
			if a := s.Anonymous; a.UserID == "" || a.Directory == "" {
				p.add(0, sp+".anonymous", "user_id and directory must not be empty")
			}
		case s.Header != nil:
			sub, err = ".header", s.Header.Validate()
		case s.Session != nil:
			if sessions++; sessions > 1 {
				p.add(0, sp+".session", "a virtual host has one session solution (one cookie)")
			}
			sub, err = ".session", s.Session.WithDefaults(vhost).Validate()
		case s.Ticket != nil:
			sub, err = ".ticket", s.Ticket.Validate()
		case s.SessionModule != nil:
			sub, err = ".session_module", s.SessionModule.Validate()
			validateSSL(s.SessionModule.ValidationSSL, p, sp+sub+".validation_ssl", outbound)
		case s.SAML != nil:
			sub, err = ".saml", s.SAML.Validate()
			if prev, dup := samlPaths[s.SAML.PathPrefix]; dup {
				p.add(0, sp+sub+".path_prefix", "%q is also authentication[%d]'s: give each SAML solution its own", s.SAML.PathPrefix, prev)
			}
			samlPaths[s.SAML.PathPrefix] = j
		case s.OIDC != nil:
			sub, err = ".oidc", s.OIDC.Validate()
			validateSSL(s.OIDC.SSL, p, sp+sub+".ssl", outbound)
			checkStore(p, sp+sub+".private_key_jwt.keystore", s.OIDC.PrivateKeyJWT.Keystore, "keystore", outbound)
			checkOIDCPaths(p, sp+sub, j, s.OIDC, oidcPaths)
		}
		if (s.Ticket != nil || s.SessionModule != nil) && !authAPI {
			p.add(0, sp+sub, "needs clients.auth_api.listen: tickets and sessions are issued there")
		}
		for _, fe := range fieldErrors(err) {
			p.add(0, join(sp+sub, fe.Field), "%v", fe.Err)
		}
		if (s.Ticket != nil || s.SAML != nil || s.OIDC != nil) && !slices.ContainsFunc(sols, func(o clientapi.Solution) bool { return o.Session != nil }) {
			p.add(0, sp+sub, "a %s login opens one of the node's sessions: add a session solution (- session: {}) to this chain", s.Kinds()[0])
		}
	}
}

// checkOIDCPaths refuses an OIDC solution whose paths another of the
// virtual host's OIDC solutions (seen: path → its index) serves already.
func checkOIDCPaths(p *problems, path string, j int, o *oidcauth.Config, seen map[string]int) {
	for _, f := range []struct{ field, v string }{
		{"callback_path", o.CallbackPath}, {"login_path", o.LoginPath}, {"verify_path", o.VerifyPath}, {"jwks_path", o.JWKSPath},
	} {
		if prev, dup := seen[f.v]; dup && prev != j {
			p.add(0, path+"."+f.field, "%q is also authentication[%d]'s: give each OIDC solution its own paths", f.v, prev)
			continue
		}
		seen[f.v] = j
	}
}

// validateAuthAPI checks the authentication API's listener, when on.
func validateAuthAPI(p *problems, c clientapi.AuthAPI, listens map[string]string) {
	if c.Listen == "" {
		return
	}
	if checkAddress(p, "clients.auth_api.listen", c.Listen, true) && !strings.HasSuffix(c.Listen, ":0") {
		listens[c.Listen] = "auth_api"
	}
	validateSSL(c.SSL, p, "clients.auth_api.ssl", inbound)
	for _, fe := range fieldErrors(c.Validate()) {
		p.add(0, join("clients.auth_api", fe.Field), "%v", fe.Err)
	}
}

// fieldErrors unpacks a component's joined *auth.FieldError; any other
// error becomes one without a field.
func fieldErrors(err error) []*auth.FieldError {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var out []*auth.FieldError
	for _, e := range errs {
		var fe *auth.FieldError
		if !errors.As(e, &fe) {
			fe = &auth.FieldError{Err: e}
		}
		out = append(out, fe)
	}
	return out
}

func validateIdentity(p *problems, path string, id clientapi.Identity) {
	headers := map[string]string{"headers.user_id": id.Headers.UserID, "headers.directory": id.Headers.Directory, "headers.groups": id.Headers.Groups, "headers.anonymous": id.Headers.Anonymous, "jwt.header": id.JWT.Header}
	for field, h := range headers {
		if !httpguts.ValidHeaderFieldName(h) {
			p.add(0, path+"."+field, "%q is not a valid header name", h)
		}
	}
	for j, h := range id.Strip {
		if !httpguts.ValidHeaderFieldName(h) {
			p.add(0, index(path+".strip", j), "%q is not a valid header name", h)
		}
	}
	if j := id.JWT; j.Keystore != "" {
		checkStore(p, path+".jwt.keystore", j.Keystore, "keystore", inbound)
		for _, fe := range fieldErrors(j.Validate()) {
			p.add(0, join(path+".jwt", fe.Field), "%v", fe.Err)
		}
	}
}

func validateRoutes(p *problems, path string, routes []clientapi.Route, targets map[string]bool) {
	names := map[string]bool{}
	for j, r := range routes {
		rp := index(path+".routes", j)
		checkName(p, rp+".name", r.Name, names)
		if r.Match == "" {
			p.add(0, rp+".match", "required: a pattern such as \"GET /api/v1/apps/{app}/\"")
		} else if err := clientapi.CheckMatch(r.Match, r.Resource); err != nil {
			p.add(0, rp+".match", "%v", err)
		}
		if !targets[r.Target] {
			p.add(0, rp+".target", "no target endpoint named %q in clients.target_endpoints", r.Target)
		}
		if r.StripPrefix != "" && !strings.HasPrefix(r.StripPrefix, "/") {
			p.add(0, rp+".strip_prefix", "%q must start with /", r.StripPrefix)
		}
		checkRange(p, rp+".timeout", r.Timeout, 100*time.Millisecond, time.Hour)
		if r.Action == "" {
			p.add(0, rp+".action", "required: the action authorization is asked for, e.g. app.read")
		}
		if r.Resource.Type == "" {
			p.add(0, rp+".resource.type", "required, e.g. app or space")
		}
	}
}
