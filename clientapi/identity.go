package clientapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// identityPrefix: every client header under it is removed, whatever the
// configuration names, so that no backend trusts a client's claim.
const identityPrefix = "X-Edgefort-"

// stripSet is the canonical names of the client headers always removed
// before proxying (besides identityPrefix).
func stripSet(id Identity) map[string]bool {
	s := map[string]bool{}
	for _, h := range append([]string{id.Headers.UserID, id.Headers.Directory, id.Headers.Groups, id.Headers.Anonymous, id.JWT.Header}, id.Strip...) {
		if h != "" {
			s[textproto.CanonicalMIMEHeaderKey(h)] = true
		}
	}
	return s
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
				slog.String(logKeyVirtualHost, h.cfg.Name), slog.String(logKeyRoute, rt.cfg.Name),
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
		ck := textproto.CanonicalMIMEHeaderKey(k)
		switch {
		case h.strip[ck], strings.HasPrefix(ck, identityPrefix):
		case !trusted && (ck == "Forwarded" || strings.HasPrefix(ck, "X-Forwarded-")):
		default:
			continue
		}
		delete(out, k)
	}
	if h.session != nil {
		stripCookie(out, h.session.Config().Cookie)
	}
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
	set(hs.Groups, strings.Join(id.Groups, ","))
	if id.Anonymous {
		set(hs.Anonymous, "true")
	}
	if st.token != "" && h.minter != nil {
		out.Set(h.minter.Header(), st.token)
	}
}
