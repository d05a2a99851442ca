package clientapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"
	"unicode/utf8"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// identityPrefix: every client header under it is removed, whatever the
// configuration names, so that no backend trusts a client's claim.
const identityPrefix = "X-Edgefort-"

// stripSet is the names (as stripKey gives them) of the client headers
// always removed before proxying (besides identityPrefix).
func stripSet(id Identity) map[string]bool {
	s := map[string]bool{}
	for _, h := range append([]string{id.Headers.UserID, id.Headers.Directory, id.Headers.Groups, id.Headers.Anonymous, id.JWT.Header}, id.Strip...) {
		if h != "" {
			s[stripKey(h)] = true
		}
	}
	return s
}

// stripKey is the name a header is compared under when deciding what to
// strip: canonical, with underscores read as dashes. CGI-style backends
// (PHP, uWSGI, Apache with mod_cgi, nginx with underscores_in_headers)
// map X_Edgefort_User and X-Edgefort-User to the same variable, so a
// client must not get either spelling through.
func stripKey(k string) string {
	if strings.IndexByte(k, '_') >= 0 {
		k = strings.ReplaceAll(k, "_", "-")
	}
	return textproto.CanonicalMIMEHeaderKey(k)
}

// withIdentity records id (and its minted token, when the virtual host
// mints one) in the request's state for the proxy's rewrite.
func (h *virtualHost) withIdentity(w http.ResponseWriter, r *http.Request, rt *route, id auth.Identity) bool {
	st := stateOf(r.Context())
	var tok string
	if h.minter != nil {
		var err error
		if tok, err = h.minter.Mint(id); err != nil {
			h.log.LogAttrs(r.Context(), slog.LevelError, "minting the identity token failed",
				slog.String(logKeyRoute, rt.cfg.Name),
				slog.String(logKeyRequestID, st.id), slog.String(logKeyError, err.Error()))
			writeProblem(w, r, http.StatusInternalServerError, "identity_unavailable")
			return false
		}
	}
	st.authorized, st.identity, st.token = true, id, tok
	return true
}

// stripIdentity removes what a client may have sent to pose as a user or
// as a proxy: identity headers always, forwarding headers unless the peer
// is a trusted proxy.
func (h *virtualHost) stripIdentity(out http.Header, trusted bool) {
	for k := range out {
		ck := stripKey(k)
		switch {
		case h.strip[ck], strings.HasPrefix(ck, identityPrefix):
		case !trusted && (ck == "Forwarded" || strings.HasPrefix(ck, "X-Forwarded-")):
		default:
			continue
		}
		delete(out, k)
	}
	// The user's credentials for the node stay at the node: a backend
	// that saw them could replay them on every route of the virtual host
	// (and a cloud user token, at the cloud). It gets the identity
	// headers or the node's short-lived identity JWT instead. Other
	// Authorization schemes (Basic to a backend of its own) pass.
	if h.chain.bearer {
		stripBearer(out)
	}
	if len(h.cookies) > 0 {
		stripCookie(out, h.cookies)
	}
}

// stripBearer removes the Bearer values of Authorization, however many
// and in whatever order, and keeps the others.
func stripBearer(out http.Header) {
	vs := out[headerAuthorization]
	n := 0
	for _, v := range vs {
		if isBearer(v) {
			n++
		}
	}
	switch {
	case n == 0:
	case n == len(vs):
		delete(out, headerAuthorization)
	default:
		keep := make([]string, 0, len(vs)-n)
		for _, v := range vs {
			if !isBearer(v) {
				keep = append(keep, v)
			}
		}
		out[headerAuthorization] = keep
	}
}

const headerAuthorization = "Authorization"

// isBearer reports whether an Authorization value is a Bearer credential
// (the scheme is case-insensitive).
func isBearer(v string) bool {
	const scheme = "bearer "
	return len(v) >= len(scheme) && strings.EqualFold(v[:len(scheme)], scheme)
}

// setIdentity sets the authenticated user's headers on the outbound
// request.
func (h *virtualHost) setIdentity(ctx context.Context, out http.Header) {
	st := stateOf(ctx)
	if st == nil || !st.authorized {
		return
	}
	id := st.identity
	hs := h.cfg.Identity.Headers
	set := func(name, v string) {
		if name != "" {
			out.Set(name, v)
		}
	}
	set(hs.UserID, id.UserID)
	set(hs.Directory, id.Directory)
	set(hs.Groups, strings.Join(id.Groups, groupsHeaderSeparator))
	if id.Anonymous {
		set(hs.Anonymous, "true")
	}
	if st.token != "" && h.minter != nil {
		out.Set(h.minter.Header(), st.token)
	}
}

// ReasonBadIdentity refuses a user whose id, directory or groups cannot be
// passed on safely (see checkIdentity).
const ReasonBadIdentity = "identity_not_representable"

// Bounds of the identity values a backend receives: one header line each
// stays well under the 8 KiB that nginx and most servers accept.
const (
	maxIdentityValueBytes  = 1024
	maxGroupsHeaderBytes   = 6 * 1024
	groupsHeaderSeparator  = ","
	errIdentityValueFormat = "%s %w"
)

var (
	errIdentityControl = errors.New("holds a control character (CR, LF, NUL, ...)")
	errIdentityUTF8    = errors.New("is not valid UTF-8")
	errIdentityLong    = fmt.Errorf("is longer than %d bytes", maxIdentityValueBytes)
	errGroupComma      = errors.New("holds a comma, which would forge another group in the comma-separated groups header")
	errGroupsLong      = fmt.Errorf("groups are longer than %d bytes together", maxGroupsHeaderBytes)
)

// checkIdentity refuses identity values that would reach a backend as
// something else: a CR/LF or other control character (header injection, or
// a transport error answered as a 502), invalid UTF-8, a value too long
// for a header line, and, when the groups go in one comma-separated
// header, a group with a comma (a group "x,admins" would read as two).
// The error names the field, never the value.
func checkIdentity(id auth.Identity, groupsHeader bool) error {
	check := func(field, v string) error {
		switch {
		case len(v) > maxIdentityValueBytes:
			return fmt.Errorf(errIdentityValueFormat, field, errIdentityLong)
		case !utf8.ValidString(v):
			return fmt.Errorf(errIdentityValueFormat, field, errIdentityUTF8)
		case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return fmt.Errorf(errIdentityValueFormat, field, errIdentityControl)
		}
		return nil
	}
	if err := check("user id", id.UserID); err != nil {
		return err
	}
	if err := check("directory", id.Directory); err != nil {
		return err
	}
	total := 0
	for i, g := range id.Groups {
		if err := check(fmt.Sprintf("group %d", i), g); err != nil {
			return err
		}
		if groupsHeader && strings.Contains(g, groupsHeaderSeparator) {
			return fmt.Errorf("group %d %w", i, errGroupComma)
		}
		total += len(g) + len(groupsHeaderSeparator)
	}
	if total > maxGroupsHeaderBytes {
		return errGroupsLong
	}
	return nil
}
