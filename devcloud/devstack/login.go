package devstack

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/html"

	"github.com/edgefort/edgefort/internal/httpbody"
)

// ErrLoginRefused means the dev IdP refused the user name or password.
var ErrLoginRefused = errors.New("the IdP refused the user name or password")

// IdP names for Login.
const (
	IdPSAML = "saml"
	IdPOIDC = "oidc"
)

// loginSteps bounds the forms a login goes through (SAML: the login form
// and the response's; OIDC: login and consent).
const loginSteps = 8

// Login signs user in through the dev IdP idp (IdPSAML or IdPOIDC) as a
// browser does: the sso host sends it to the IdP, it fills the IdP's
// login form (and OIDC's consent page), follows the IdP back to the node
// (SAML's auto-submitting form; OIDC's redirect to the callback), which
// opens a session and sends it to the engine's page. It returns that page
// (bounded to 1 MiB). A wrong password is ErrLoginRefused; a node that
// refuses the IdP's answer, an error naming its status.
func Login(ctx context.Context, info IdPsInfo, roots *x509.CertPool, idp, user, password string) ([]byte, error) {
	start := map[string]string{IdPSAML: info.SAMLLogin, IdPOIDC: info.OIDCLogin}[idp]
	if start == "" {
		return nil, fmt.Errorf("login: no dev IdP %q (want %s or %s; a stack without --no-idps)", idp, IdPSAML, IdPOIDC)
	}
	sso, err := url.Parse(info.SSO)
	if err != nil {
		return nil, fmt.Errorf("login: sso URL %q: %w", info.SSO, err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	resp, body, err := browse(ctx, hc, http.MethodGet, start, nil)
	for step := 0; err == nil; step++ {
		at := resp.Request.URL
		switch {
		case at.Host == sso.Host && resp.StatusCode == http.StatusOK:
			return body, nil
		case at.Host == sso.Host:
			return nil, fmt.Errorf("login: the node answered %s at %s: %.300s", resp.Status, at.Path, body)
		case resp.StatusCode == http.StatusUnauthorized:
			return nil, ErrLoginRefused
		case step == loginSteps:
			return nil, fmt.Errorf("login: still at %s after %d forms", at.Redacted(), loginSteps)
		}
		f, ok := parseForm(body)
		if !ok {
			return nil, fmt.Errorf("login: %s answered %s with no form: %.300s", at.Redacted(), resp.Status, body)
		}
		action, perr := at.Parse(f.action)
		if perr != nil {
			return nil, fmt.Errorf("login: form action %q: %w", f.action, perr)
		}
		for _, name := range f.fill {
			switch name {
			case "username", "login":
				f.values.Set(name, user)
			case "password":
				f.values.Set(name, password)
			}
		}
		resp, body, err = browse(ctx, hc, f.method, action.String(), f.values)
	}
	return nil, err
}

// browse requests u as a browser's page load (following redirects, the
// jar keeping cookies) and reads the final answer.
func browse(ctx context.Context, hc *http.Client, method, u string, form url.Values) (*http.Response, []byte, error) {
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(form.Encode())
	} else if form != nil {
		u += "?" + form.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "text/html")
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("login: %w", err)
	}
	defer resp.Body.Close()
	b, err := httpbody.Read(resp, 1<<20, "login page")
	return resp, b, err
}

// form is the first form of a page: where it goes, its hidden (and
// other preset) values, and the fields a user types into.
type form struct {
	action, method string
	values         url.Values
	fill           []string
}

func parseForm(page []byte) (form, bool) {
	z := html.NewTokenizer(bytes.NewReader(page))
	var f form
	in := false
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return f, false
		case html.EndTagToken:
			if name, _ := z.TagName(); in && string(name) == "form" {
				return f, true
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			attrs := tagAttrs(z)
			switch {
			case string(name) == "form" && !in:
				in = true
				f = form{action: attrs["action"], method: strings.ToUpper(attrs["method"]), values: url.Values{}}
				if f.method == "" {
					f.method = http.MethodGet
				}
			case string(name) == "input" && in && attrs["name"] != "":
				switch attrs["type"] {
				case "hidden", "submit":
					f.values.Set(attrs["name"], attrs["value"])
				default:
					f.fill = append(f.fill, attrs["name"])
				}
			}
		}
	}
}

func tagAttrs(z *html.Tokenizer) map[string]string {
	attrs := map[string]string{}
	for {
		k, v, more := z.TagAttr()
		if len(k) > 0 {
			attrs[string(k)] = string(v)
		}
		if !more {
			return attrs
		}
	}
}
