package oidcauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgefort/edgefort/clientapi/jwtauth"
	"github.com/edgefort/edgefort/internal/httpbody"
)

// Bounds of the provider's answers.
const (
	httpTimeout       = 10 * time.Second
	discoveryLimit    = 64 << 10
	tokenAnswerLimit  = 64 << 10
	discoveryLifetime = time.Hour
)

// provider is the part of the discovery document the node uses.
type provider struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
	fetched               time.Time
}

// discover returns the provider's endpoints, fetching the discovery
// document when it has none or it is older than discoveryLifetime (the
// last good one is kept when a refresh fails).
func (s *Solution) discover(r *http.Request) (provider, error) {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if !s.provider.fetched.IsZero() && s.now().Sub(s.provider.fetched) < discoveryLifetime {
		return s.provider, nil
	}
	p, err := s.fetchDiscovery(r.Context())
	if err != nil {
		if !s.provider.fetched.IsZero() {
			s.log.Warn("oidc discovery refresh failed; the last good document stays in use", "issuer", s.cfg.Issuer, "error", err)
			return s.provider, nil
		}
		return provider{}, err
	}
	if s.verifier == nil || s.provider.JWKSURI != p.JWKSURI {
		v, err := jwtauth.New(jwtauth.Config{Name: s.cfg.Name, Issuer: s.cfg.Issuer, Audience: []string{s.cfg.ClientID},
			Algorithms: s.cfg.SigningAlgorithms, JWKSURL: p.JWKSURI, JWKSSSL: s.cfg.SSL, Claims: s.cfg.Claims,
			Cache: jwtauth.Cache{Enabled: new(bool)}}, jwtauth.Deps{Keystores: s.deps.Keystores, Logger: s.log, Now: s.now})
		if err != nil {
			return provider{}, fmt.Errorf("oidc: provider's jwks_uri: %w", err)
		}
		s.verifier = v
	}
	s.provider = p
	return p, nil
}

func (s *Solution) fetchDiscovery(ctx context.Context) (provider, error) {
	u := strings.TrimSuffix(s.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return provider{}, fmt.Errorf("oidc discovery: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return provider{}, fmt.Errorf("oidc discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return provider{}, fmt.Errorf("oidc discovery: %s answered %s", u, resp.Status)
	}
	var p provider
	if err := httpbody.ReadJSON(resp, discoveryLimit, "oidc discovery document", &p); err != nil {
		return provider{}, err
	}
	if p.Issuer != s.cfg.Issuer {
		return provider{}, fmt.Errorf("oidc discovery: issuer %.200q is not the configured %q", p.Issuer, s.cfg.Issuer)
	}
	for _, e := range []struct{ name, v string }{
		{"authorization_endpoint", p.AuthorizationEndpoint}, {"token_endpoint", p.TokenEndpoint}, {"jwks_uri", p.JWKSURI},
	} {
		if eu, err := url.Parse(e.v); err != nil || eu.Scheme != "https" || eu.Host == "" {
			return provider{}, fmt.Errorf("oidc discovery: %s %.200q is not an https URL", e.name, e.v)
		}
	}
	p.fetched = s.now()
	return p, nil
}

// tokenVerifier is the inner ID token's verifier, built by discovery.
func (s *Solution) tokenVerifier() (*jwtauth.Solution, error) {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if s.verifier == nil {
		return nil, errors.New("oidc: the provider was not discovered")
	}
	return s.verifier, nil
}

// exchange redeems code at the token endpoint and returns the ID token.
func (s *Solution) exchange(r *http.Request, code, verifier string) (string, error) {
	p, err := s.discover(r)
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {s.redirectURI(r)},
		"code_verifier": {verifier},
	}
	switch s.cfg.TokenAuth {
	case "client_secret_post":
		form.Set("client_id", s.cfg.ClientID)
		form.Set("client_secret", s.cfg.ClientSecret)
	case "private_key_jwt":
		assertion, err := s.clientAssertion()
		if err != nil {
			return "", fmt.Errorf("oidc token request: private_key_jwt: %w", err)
		}
		form.Set("client_id", s.cfg.ClientID)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", assertion)
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, p.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("oidc token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if s.cfg.TokenAuth == "client_secret_basic" {
		req.SetBasicAuth(url.QueryEscape(s.cfg.ClientID), url.QueryEscape(s.cfg.ClientSecret))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("oidc token request: %w", err)
	}
	defer resp.Body.Close()
	var answer struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error"`
	}
	if err := httpbody.ReadJSON(resp, tokenAnswerLimit, "oidc token answer", &answer); err != nil {
		return "", fmt.Errorf("oidc token request: %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("oidc token request: %s, error %.80q", resp.Status, answer.Error)
	}
	if answer.IDToken == "" {
		return "", errors.New("oidc token request: the answer carries no id_token")
	}
	return answer.IDToken, nil
}
