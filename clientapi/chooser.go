package clientapi

import (
	"bytes"
	"html"
	"net/http"
	"net/url"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// PathLoginChooser is the page where a browser without credentials picks
// one of the virtual host's interactive logins (SAML IdPs, OpenID
// providers) when it has more than one: GET ?return_to=/page.
const PathLoginChooser = "/.edgefort/login"

// chooserCSP allows the page nothing but its own markup: no script, no
// style, no frame, no form; the links are plain navigations.
const chooserCSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// writeChooserPage writes the page's markup. Not html/template: its
// Execute reaches reflect's MethodByName, and then the linker keeps every
// exported method of every reachable type: 1.9 MiB of the stripped binary
// for this one page (issue #13). Names are escaped as text; each URL is
// a login path of our own with an encoded query, escaped as an
// attribute value.
func writeChooserPage(b *bytes.Buffer, items []chooserItem) {
	b.WriteString(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body><h1>Sign in</h1><p>Choose how to sign in:</p><ul>
`)
	for _, it := range items {
		b.WriteString(`<li><a href="` + html.EscapeString(it.URL) + `">` + html.EscapeString(it.Name) + "</a></li>\n")
	}
	b.WriteString("</ul></body></html>\n")
}

type chooserItem struct{ Name, URL string }

// loginLinks are the chain's solutions a browser can be sent to by a
// link, in chain order.
func (h *virtualHost) loginLinks() []auth.LoginLink {
	var out []auth.LoginLink
	for _, s := range h.chain.solutions {
		if l, ok := s.(auth.LoginLink); ok {
			out = append(out, l)
		}
	}
	return out
}

// loginLinkURL is l's login start, to come back to back.
func loginLinkURL(l auth.LoginLink, back string) string {
	return l.LoginPath() + "?" + url.Values{signInReturnParam: {back}}.Encode()
}

// serveChooser lists the virtual host's interactive logins, each linking
// to its login start with return_to kept; with one, it sends the browser
// straight there.
func (h *virtualHost) serveChooser(w http.ResponseWriter, r *http.Request) {
	back, err := checkReturnTo(r.URL.Query()[signInReturnParam])
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, ReasonBadReturnTo)
		return
	}
	links := h.loginLinks()
	w.Header().Set(headerCacheControl, cacheControlNoStorage)
	if len(links) == 1 {
		http.Redirect(w, r, loginLinkURL(links[0], back.RequestURI()), http.StatusSeeOther)
		return
	}
	items := make([]chooserItem, 0, len(links))
	for _, l := range links {
		items = append(items, chooserItem{Name: l.DisplayName(), URL: loginLinkURL(l, back.RequestURI())})
	}
	var b bytes.Buffer
	writeChooserPage(&b, items)
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", chooserCSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	w.Write(b.Bytes())
}
