package clientapi

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// SignInPath is where a page served to the anonymous user sends the
// browser to sign in: GET SignInPath?return_to=/the/page. Every virtual
// host serves it, unauthenticated.
const SignInPath = "/.edgefort/signin"

// Sign-in reasons and limits.
const (
	ReasonNoInteractive   = "no_interactive_solution"
	ReasonBadReturnTo     = "invalid_return_to"
	signInReturnParam     = "return_to"
	maxReturnToBytes      = 2048
	internalPathPrefix    = "/.edgefort/"
	headerCacheControl    = "Cache-Control"
	cacheControlNoStorage = "no-store"
)

// serveSignIn moves the browser to the virtual host's interactive
// solution (the first Challenger of the chain: a ticket module, an IdP),
// which brings it back to return_to once the user has logged in. A chain
// without one answers 404: there is nothing to sign in with here.
func (h *virtualHost) serveSignIn(w http.ResponseWriter, r *http.Request) {
	back, err := checkReturnTo(r.URL.Query()[signInReturnParam])
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, ReasonBadReturnTo)
		return
	}
	if !h.challenge(w, r, pageRequest(r, back)) {
		writeProblem(w, r, http.StatusNotFound, ReasonNoInteractive)
	}
}

// challenge redirects the browser to the first Challenger of the chain
// that answers for page (the request to come back to), or to the login
// chooser when the chain has several login links (IdPs); it reports
// whether it redirected.
func (h *virtualHost) challenge(w http.ResponseWriter, r, page *http.Request) bool {
	// Several IdPs: the user picks one on the chooser page.
	if len(h.loginLinks()) > 1 {
		w.Header().Set(headerCacheControl, cacheControlNoStorage)
		to := PathLoginChooser + "?" + url.Values{signInReturnParam: {page.URL.RequestURI()}}.Encode()
		http.Redirect(w, r, to, http.StatusSeeOther)
		return true
	}
	for _, s := range h.chain.solutions {
		c, ok := s.(auth.Challenger)
		if !ok {
			continue
		}
		if to, ok := c.Challenge(page); ok {
			w.Header().Set(headerCacheControl, cacheControlNoStorage)
			http.Redirect(w, r, to, http.StatusSeeOther)
			return true
		}
	}
	return false
}

// wantsPage reports whether r is a browser navigating to a page, which is
// sent to log in rather than given a 401: a GET or HEAD that accepts
// text/html. API clients (fetch, curl) get the 401.
func wantsPage(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// checkReturnTo accepts a path on this virtual host only: relative, one
// leading slash, no backslash or control character anywhere (browsers
// read "/\host" and "/\t/host" as another host), nothing that decodes to
// "//", and not the node's own paths. Absent, it is "/".
func checkReturnTo(vs []string) (*url.URL, error) {
	if len(vs) == 0 {
		return &url.URL{Path: "/"}, nil
	}
	v := vs[0]
	switch {
	case len(vs) > 1:
		return nil, errors.New("return_to given more than once")
	case len(v) > maxReturnToBytes:
		return nil, errors.New("return_to too long")
	case !strings.HasPrefix(v, "/"), strings.HasPrefix(v, "//"),
		strings.ContainsRune(v, '\\'), strings.ContainsFunc(v, unicode.IsControl), strings.ContainsFunc(v, unicode.IsSpace):
		return nil, errors.New("return_to is not a path on this host")
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return nil, errors.New("return_to is not a path on this host")
	}
	p := u.Path // decoded
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsRune(p, '\\') ||
		strings.ContainsFunc(p, unicode.IsControl) || strings.HasPrefix(p, internalPathPrefix) {
		return nil, errors.New("return_to is not a page on this host")
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}
