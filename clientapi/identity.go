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

// withIdentity puts id (and its minted token, when the virtual host mints
// one) in the request's context for the proxy's rewrite.
func (h *virtualHost) withIdentity(w http.ResponseWriter, r *http.Request, rt *route, id auth.Identity) (context.Context, bool) {
	ctx := context.WithValue(r.Context(), ctxIdentity, id)
	if h.minter == nil {
		return ctx, true
	}
	tok, err := h.minter.Mint(id)
	if err != nil {
		h.log.LogAttrs(ctx, slog.LevelError, "minting the identity token failed",
			slog.String(logKeyVirtualHost, h.cfg.Name), slog.String(logKeyRoute, rt.cfg.Name),
			slog.String(logKeyRequestID, requestID(ctx)), slog.String(logKeyError, err.Error()))
		writeProblem(w, r, http.StatusInternalServerError, "identity_unavailable")
		return nil, false
	}
	return context.WithValue(ctx, ctxIdentityToken, tok), true
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
	if h.session != nil {
		stripCookie(out, h.session.Config().Cookie)
	}
}

// setIdentity sets the authenticated user's headers on the outbound
// request.
func (h *virtualHost) setIdentity(ctx context.Context, out http.Header) {
	id, ok := ctx.Value(ctxIdentity).(auth.Identity)
	if !ok {
		return
	}
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
	if tok, ok := ctx.Value(ctxIdentityToken).(string); ok && h.minter != nil {
		out.Set(h.minter.Header(), tok)
	}
}

