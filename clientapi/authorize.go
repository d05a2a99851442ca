package clientapi

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// authorize asks the Authorizer whether id may perform rt's action on its
// resource and answers 403 itself when not.
func (h *virtualHost) authorize(w http.ResponseWriter, r *http.Request, rt *route, id auth.Identity) bool {
	req := AuthzRequest{
		UserID:    id.UserID,
		Directory: id.Directory,
		Groups:    id.Groups,
		Action:    rt.cfg.Action,
		Resource:  rt.resource(r),
	}
	d, err := h.authz.Authorize(r.Context(), req)
	if d.Allow {
		return true
	}
	reason := ReasonDenied
	if err != nil || d.Source == "unreachable" || d.Source == "error" {
		reason = ReasonAuthzUnavailable
	}
	attrs := []slog.Attr{
		slog.String(logKeyRoute, rt.cfg.Name),
		slog.String(logKeyRequestID, requestID(r.Context())), slog.String(logKeyUser, id.UserID),
		slog.String(logKeyDirectory, id.Directory), slog.String(logKeySolution, id.Solution),
		slog.String("action", req.Action), slog.String("resource", resourceString(req.Resource)),
		slog.String(logKeyResult, "denied"), slog.String(logKeyReason, reason),
		slog.String("decision_reason", d.Reason), slog.String("decision_source", d.Source),
	}
	if err != nil {
		attrs = append(attrs, slog.String(logKeyError, err.Error()))
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "authorization denied", attrs...)
	writeProblem(w, r, http.StatusForbidden, reason)
	return false
}

func resourceString(r Resource) string {
	return strings.Join([]string{r.Type, r.Space, r.ID}, "/")
}
