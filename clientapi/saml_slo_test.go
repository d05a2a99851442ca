package clientapi

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/edgefort/edgefort/clientapi/samlauth"
	"github.com/edgefort/edgefort/clientapi/session"
)

const (
	samlSLO    = samlNode + "/.edgefort/saml/slo"
	samlLogout = samlNode + "/.edgefort/saml/logout"
)

// samlLogin signs alice in (response over POST) and returns her session
// cookie ("name=value") and the session's CSRF token.
func (s *samlRig) samlLogin(t *testing.T) (cookie, csrf string) {
	t.Helper()
	_, body := s.toIdP(t, "post", "ok")
	action, xml, relay := postForm(t, body)
	resp, body := s.submit(t, action, xml, relay)
	s.loggedIn(t, resp, body)
	return strings.Split(resp.Header.Values("Set-Cookie")[0], ";")[0], resp.Header.Get(session.HeaderCSRF)
}

// signedIn reports whether cookie still opens /app/x.
func (s *samlRig) signedIn(t *testing.T, cookie string) bool {
	t.Helper()
	resp, _ := samlDo(t, s.hc, "GET", samlNode+"/app/x", nil, "Cookie", cookie)
	return resp.StatusCode == http.StatusOK
}

var sloInput = regexp.MustCompile(`<input type="hidden" name="(SAMLRequest|RelayState)" value="([^"]*)"`)

// Single logout against samlify, both ways. The SP metadata lists the SLO
// endpoint. The user's sign-out (POST with the CSRF token) ends the node
// session and sends a signed LogoutRequest with the login's NameID and
// SessionIndex over HTTP-Redirect; samlify verifies it and answers with a
// signed LogoutResponse, which the node takes once (InResponseTo matched).
// samlify's own LogoutRequest (HTTP-Redirect and HTTP-POST) ends the node
// session of that login only and gets a signed LogoutResponse back; one
// unsigned or signed with another key is refused and ends nothing.
func TestSAMLSingleLogout(t *testing.T) {
	s := newSAMLRig(t, samlOptions{singleLogout: true})
	_, md := samlDo(t, s.hc, "GET", samlNode+"/.edgefort/saml/metadata", nil)
	for _, b := range []string{"HTTP-Redirect", "HTTP-POST"} {
		if !strings.Contains(md, `<SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:`+b+`" Location="`+samlSLO+`"`) {
			t.Errorf("the SP metadata lists no %s SLO endpoint at %s:\n%s", b, samlSLO, md)
		}
	}

	t.Run("sp-initiated", func(t *testing.T) {
		cookie, csrf := s.samlLogin(t)
		resp, body := samlDo(t, s.hc, "POST", samlLogout+"?return_to=%2Fbye", nil, "Cookie", cookie)
		if resp.StatusCode != http.StatusForbidden || !s.signedIn(t, cookie) {
			t.Fatalf("sign-out without the CSRF token: %d %s, want 403 and the session kept", resp.StatusCode, body)
		}
		resp, body = samlDo(t, s.hc, "POST", samlLogout+"?return_to=%2Fbye", nil, "Cookie", cookie, session.HeaderCSRF, csrf)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, s.idp+"/slo?SAMLRequest=") || !strings.Contains(loc, "&Signature=") {
			t.Fatalf("sign-out: %d Location %q %s, want 303 to the IdP with a signed LogoutRequest", resp.StatusCode, loc, body)
		}
		if s.signedIn(t, cookie) {
			t.Error("the node session outlived the sign-out")
		}
		idpResp, body := samlDo(t, s.hc, "GET", loc, nil)
		back := idpResp.Header.Get("Location")
		if idpResp.StatusCode != http.StatusFound || !strings.HasPrefix(back, samlSLO+"?SAMLResponse=") {
			t.Fatalf("samlify on the LogoutRequest: %d Location %q %s, want 302 to the node's SLO endpoint", idpResp.StatusCode, back, body)
		}
		_, last := samlDo(t, s.hc, "GET", s.idp+"/slo/last", nil)
		var sent struct{ NameID, SessionIndex, LoginSessionIndex string }
		must(t, json.Unmarshal([]byte(strings.NewReplacer("name_id", "NameID", "login_session_index", "LoginSessionIndex", "session_index", "SessionIndex").Replace(last)), &sent))
		if sent.NameID != "alice@corp.example" || sent.SessionIndex == "" || sent.SessionIndex != sent.LoginSessionIndex {
			t.Errorf("the LogoutRequest named %+v, want alice@corp.example and the login's SessionIndex", sent)
		}
		resp, body = samlDo(t, s.hc, "GET", back, nil)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/bye" {
			t.Fatalf("the IdP's LogoutResponse: %d Location %q %s, want 303 to /bye", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		resp, body = samlDo(t, s.hc, "GET", back, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, samlauth.ReasonLogoutUnsolicited) {
			t.Errorf("the LogoutResponse again: %d %s, want 400 %s", resp.StatusCode, body, samlauth.ReasonLogoutUnsolicited)
		}
		// A LogoutResponse, signed, that answers another request.
		cookie, csrf = s.samlLogin(t)
		resp, _ = samlDo(t, s.hc, "POST", samlLogout, nil, "Cookie", cookie, session.HeaderCSRF, csrf)
		idpResp, _ = samlDo(t, s.hc, "GET", resp.Header.Get("Location")+"&variant=inresponseto", nil)
		resp, body = samlDo(t, s.hc, "GET", idpResp.Header.Get("Location"), nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, samlauth.ReasonInResponseTo) {
			t.Errorf("a LogoutResponse to another request: %d %s, want 401 %s", resp.StatusCode, body, samlauth.ReasonInResponseTo)
		}
	})

	for _, binding := range []string{"redirect", "post"} {
		t.Run("idp-initiated "+binding, func(t *testing.T) {
			older, _ := s.samlLogin(t)
			latest, _ := s.samlLogin(t) // samlify logs out its last login
			n := len(s.srv.Sessions().List())
			var lastURL string // the last LogoutRequest over HTTP-Redirect
			send := func(variant string) (*http.Response, string) {
				t.Helper()
				resp, body := samlDo(t, s.hc, "GET", s.idp+"/slo/initiate?binding="+binding+"&variant="+variant+"&relay=r1", nil)
				if binding == "redirect" {
					loc := resp.Header.Get("Location")
					if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, samlSLO+"?SAMLRequest=") {
						t.Fatalf("samlify /slo/initiate: %d Location %q %s", resp.StatusCode, loc, body)
					}
					lastURL = loc
					return samlDo(t, s.hc, "GET", loc, nil)
				}
				m := formAction.FindStringSubmatch(body)
				if m == nil || html.UnescapeString(m[1]) != samlSLO {
					t.Fatalf("samlify's logout form does not post to the SLO endpoint: %s", body)
				}
				form := url.Values{}
				for _, in := range sloInput.FindAllStringSubmatch(body, -1) {
					form.Set(in[1], html.UnescapeString(in[2]))
				}
				return samlDo(t, s.hc, "POST", samlSLO, strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
			}
			for variant, reason := range map[string]string{"unsigned": samlauth.ReasonUnsigned, "wrongkey": samlauth.ReasonBadSignature} {
				resp, body := send(variant)
				if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" || !strings.Contains(body, reason) {
					t.Errorf("%s LogoutRequest: %d %s, want 401 %s", variant, resp.StatusCode, body, reason)
				}
				if got := len(s.srv.Sessions().List()); got != n || !s.signedIn(t, latest) {
					t.Errorf("%s LogoutRequest: %d sessions left of %d, the login's signed in %v; want none ended", variant, got, n, s.signedIn(t, latest))
				}
			}
			resp, body := send("ok")
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, s.idp+"/slo?SAMLResponse=") || !strings.Contains(loc, "&Signature=") {
				t.Fatalf("LogoutRequest: %d Location %q %s, want 303 to the IdP with a signed LogoutResponse", resp.StatusCode, loc, body)
			}
			if s.signedIn(t, latest) || !s.signedIn(t, older) {
				t.Errorf("after the IdP's logout: its login signed in %v, the older login %v; want only the former ended",
					s.signedIn(t, latest), s.signedIn(t, older))
			}
			resp, body = samlDo(t, s.hc, "GET", loc, nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"in_response_to":"`) {
				t.Errorf("samlify on the node's LogoutResponse: %d %s, want it verified", resp.StatusCode, body)
			}
			if binding == "redirect" {
				// The same LogoutRequest again: a replay, refused.
				resp, body = samlDo(t, s.hc, "GET", lastURL, nil)
				if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, samlauth.ReasonReplayed) || !s.signedIn(t, older) {
					t.Errorf("the LogoutRequest replayed: %d %s, want 401 %s and nothing ended", resp.StatusCode, body, samlauth.ReasonReplayed)
				}
			}
			// The next binding starts without sessions.
			for _, info := range s.srv.Sessions().List() {
				_, err := s.srv.Sessions().Revoke(info.ID)
				must(t, err)
			}
		})
	}
}
