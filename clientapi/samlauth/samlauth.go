// Package samlauth owns the SAML 2.0 service provider solution of the
// client API: the node's SP metadata, AuthnRequests sent to the identity
// provider over HTTP-Redirect, and the assertion consumer service that
// accepts responses over HTTP-POST and HTTP-Redirect. A response counts
// only with a valid signature of the IdP on the response or the assertion
// (github.com/crewjam/saml verifies it, and audience, recipient,
// destination, validity window, InResponseTo); the HTTP-Redirect binding's
// query signature (SAML bindings §3.4.4.1), which that library does not
// check on login responses, is verified here. A login ends in one of the
// node's sessions and a redirect to the page the user asked for.
package samlauth

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/keystore"
)

// Limits on what the ACS reads from a browser.
const (
	maxPostBytes     = 512 << 10 // the whole form
	maxResponseBytes = 256 << 10 // the decoded (inflated) response XML
)

// Refusal reasons.
const (
	ReasonMalformed    = "saml_malformed"
	ReasonBadSignature = "saml_bad_signature"
	ReasonUnsigned     = "saml_unsigned"
	ReasonInvalid      = "saml_invalid"
	ReasonExpired      = "saml_expired"
	ReasonAudience     = "saml_wrong_audience"
	ReasonInResponseTo = "saml_wrong_in_response_to"
	ReasonUnsolicited  = "saml_unsolicited"
	ReasonReplayed     = "saml_replayed"
	ReasonNoUser       = "saml_no_user"
	ReasonNoMetadata   = "saml_idp_metadata_unavailable"
	ReasonReplayFull   = "saml_replay_cache_full"
	ReasonNoKey        = "saml_sp_key_unavailable"
	// ReasonNoResponse answers a request to the ACS that carries no SAML
	// response (400).
	ReasonNoResponse = "no_saml_response"
)

// Deps are what the solution needs from the client API.
type Deps struct {
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HTTPClient fetches idp_metadata_url; nil means a client with a 30s
	// timeout.
	HTTPClient *http.Client
	// Keystores resolve Keystore; nil refuses a configuration that sets
	// it.
	Keystores *keystore.Manager
	// Store keeps the accepted assertion ids (bucket ReplayBucket) across
	// restarts and reloads; nil keeps them in memory.
	Store *store.DB
	// Sessions ends the node sessions of a login the IdP logs out.
	// Required with single_logout.
	Sessions SessionEnder
}

// Solution is the SAML service provider of one virtual host.
type Solution struct {
	cfg     Config
	ks      *keystore.Manager
	acsURL  url.URL
	mdURL   url.URL
	log     *slog.Logger
	now     func() time.Time
	idp     *idpMetadata
	pending *pendingLogins
	logouts *pendingLogins // logouts the node started, for InResponseTo
	replay  *replayCache
	sloURL  url.URL
	// sessions ends node sessions at the IdP's LogoutRequest.
	sessions SessionEnder
}

// New builds the solution; the IdP metadata file must be readable.
func New(cfg Config, deps Deps) (*Solution, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Solution{cfg: cfg, log: deps.Logger, now: deps.Now, ks: deps.Keystores, sessions: deps.Sessions}
	if cfg.SingleLogout && deps.Sessions == nil {
		return nil, &auth.FieldError{Field: "single_logout", Err: errors.New("needs the node's sessions (a session solution and the state store)")}
	}
	if cfg.Keystore != "" {
		if s.ks == nil {
			return nil, &auth.FieldError{Field: "keystore", Err: errors.New("no keystores in this build")}
		}
		if _, err := s.entry(); err != nil {
			return nil, err
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	acs, _ := url.Parse(base + cfg.PathPrefix + "/acs")
	md, _ := url.Parse(base + cfg.PathPrefix + "/metadata")
	slo, _ := url.Parse(base + s.SLOPath())
	s.acsURL, s.mdURL, s.sloURL = *acs, *md, *slo
	client := deps.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	s.idp = &idpMetadata{file: cfg.IDPMetadataFile, url: cfg.IDPMetadataURL, refresh: cfg.MetadataRefresh,
		client: client, now: s.now, log: s.log}
	if cfg.IDPMetadataFile != "" {
		if _, err := s.idp.get(context.Background()); err != nil {
			return nil, &auth.FieldError{Field: "idp_metadata_file", Err: err}
		}
	}
	s.pending = &pendingLogins{max: cfg.MaxPending, ttl: cfg.RequestTTL, now: s.now, m: map[string]pendingLogin{}}
	s.logouts = &pendingLogins{max: cfg.MaxPending, ttl: cfg.RequestTTL, now: s.now, m: map[string]pendingLogin{}}
	var err error
	if s.replay, err = newReplayCache(deps.Store, cfg.EntityID, cfg.MaxReplayIDs, s.now); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Solution) Kind() string { return Kind }
func (s *Solution) Name() string { return s.cfg.Name }

// StartsSessions: a SAML login opens one of the node's sessions.
func (s *Solution) StartsSessions() bool { return true }

// Authenticate finds no credentials in ordinary requests: the node's
// session carries the user after a login; responses reach the ACS, which
// Logins serves.
func (s *Solution) Authenticate(*http.Request) auth.Result {
	return auth.Result{Outcome: auth.NoCredentials}
}

// Paths are the solution's endpoints under path_prefix: the SP metadata
// (a page), the login start, and the ACS (the end of a login).
func (s *Solution) MetadataPath() string { return s.cfg.PathPrefix + "/metadata" }
func (s *Solution) LoginPath() string    { return s.cfg.PathPrefix + "/login" }
func (s *Solution) ACSPath() string      { return s.cfg.PathPrefix + "/acs" }

// DisplayName names the IdP on the virtual host's login chooser.
func (s *Solution) DisplayName() string { return s.cfg.DisplayName }

// Endpoints are the paths the client API serves for the solution.
func (s *Solution) Endpoints() []auth.Endpoint {
	es := []auth.Endpoint{
		{Pattern: "GET " + s.MetadataPath(), Handler: http.HandlerFunc(s.ServeMetadata)},
		{Pattern: "GET " + s.LoginPath(), Start: true},
		{Pattern: "GET " + s.ACSPath(), Login: s.Consume},
		{Pattern: "POST " + s.ACSPath(), Login: s.Consume},
	}
	if s.cfg.SingleLogout {
		es = append(es, auth.Endpoint{Pattern: "GET " + s.SLOPath(), Handler: http.HandlerFunc(s.serveSLO)},
			auth.Endpoint{Pattern: "POST " + s.SLOPath(), Handler: http.HandlerFunc(s.serveSLO)})
	}
	return es
}

// entry is the SP's key and certificate as the keystore holds them now
// (a rotated alias takes effect at the next login).
func (s *Solution) entry() (*keystore.Entry, error) {
	st, err := s.ks.Resolve(s.cfg.Keystore, keystore.KindKeystore)
	if err != nil {
		return nil, &auth.FieldError{Field: "keystore", Err: err}
	}
	e, err := st.Pick(s.cfg.KeyAlias)
	if err != nil {
		field := "keystore"
		if s.cfg.KeyAlias != "" {
			field = "key_alias"
		}
		return nil, &auth.FieldError{Field: field, Err: err}
	}
	if e.Key == nil || e.Leaf() == nil {
		return nil, &auth.FieldError{Field: "key_alias", Err: fmt.Errorf("entry %q has no key and certificate", e.Alias)}
	}
	if _, ok := e.Key.(*rsa.PrivateKey); !ok && !s.cfg.SignRequests && !s.cfg.SingleLogout {
		return nil, &auth.FieldError{Field: "key_alias", Err: fmt.Errorf("entry %q: decrypting assertions needs an RSA key", e.Alias)}
	}
	return e, nil
}

// serviceProvider is the library's SP for the current IdP metadata and
// key.
func (s *Solution) serviceProvider(md *saml.EntityDescriptor) (*saml.ServiceProvider, error) {
	sp := s.baseProvider(md)
	if s.cfg.Keystore == "" {
		return sp, nil
	}
	e, err := s.entry()
	if err != nil {
		return nil, err
	}
	sp.Key, sp.Certificate = e.Key, e.Leaf()
	if len(e.Chain) > 1 {
		sp.Intermediates = e.Chain[1:]
	}
	method := dsig.RSASHA256SignatureMethod
	if _, ok := e.Key.(*ecdsa.PrivateKey); ok {
		method = dsig.ECDSASHA256SignatureMethod
	}
	if s.cfg.SignRequests {
		sp.SignatureMethod = method
	}
	if s.cfg.SingleLogout {
		sp.LogoutSignatureMethod = method
	}
	return sp, nil
}

func (s *Solution) baseProvider(md *saml.EntityDescriptor) *saml.ServiceProvider {
	sp := &saml.ServiceProvider{
		EntityID:                         s.cfg.EntityID,
		MetadataURL:                      s.mdURL,
		AcsURL:                           s.acsURL,
		IDPMetadata:                      md,
		AllowIDPInitiated:                s.cfg.AllowIDPInitiated,
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding, saml.HTTPRedirectBinding},
		ReplayCache:                      s.replay,
		MetadataValidDuration:            48 * time.Hour,
		// Unauthenticated CBC ciphertext is what padding oracles need: an
		// assertion encrypted with AES-CBC counts only in a signed Response
		// (AES-GCM is not affected).
		RequireSignedResponseForCBC: true,
	}
	if s.cfg.SingleLogout {
		sp.SloURL = s.sloURL
		sp.LogoutBindings = []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding}
	}
	return sp
}

// ServeMetadata answers the SP metadata.
func (s *Solution) ServeMetadata(w http.ResponseWriter, r *http.Request) {
	sp, err := s.serviceProvider(nil)
	if err != nil {
		s.log.Error("saml: SP metadata unavailable", "error", err)
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	b, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
	if err != nil {
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(append([]byte(xml.Header), b...))
}

// Challenge sends a browser to the IdP with an AuthnRequest over
// HTTP-Redirect; the request id is kept (with the page to come back to)
// under an opaque RelayState until RequestTTL, for InResponseTo.
func (s *Solution) Challenge(r *http.Request) (string, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "", false
	}
	md, err := s.idp.get(r.Context())
	if err != nil {
		s.log.Warn("saml login not started: no IdP metadata", "error", err)
		return "", false
	}
	sp, err := s.serviceProvider(md)
	if err != nil {
		s.log.Warn("saml login not started", "error", err)
		return "", false
	}
	dest := sp.GetSSOBindingLocation(saml.HTTPRedirectBinding)
	if dest == "" {
		s.log.Warn("saml login not started: the IdP metadata has no HTTP-Redirect SingleSignOnService")
		return "", false
	}
	req, err := sp.MakeAuthenticationRequest(dest, saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		s.log.Warn("saml login not started", "error", err)
		return "", false
	}
	relay, err := s.pending.add(req.ID, r.URL.RequestURI())
	if err != nil {
		s.log.Warn("saml login not started", "error", err)
		return "", false
	}
	u, err := req.Redirect(relay, sp)
	if err != nil {
		s.log.Warn("saml login not started", "error", err)
		return "", false
	}
	return u.String(), true
}

// Consume reads a response at the ACS (HTTP-POST or HTTP-Redirect) and
// answers the login's result; it reads the body (bounded), unlike
// Authenticate.
func (s *Solution) Consume(w http.ResponseWriter, r *http.Request) auth.Result {
	md, err := s.idp.get(r.Context())
	if err != nil {
		return refused(ReasonNoMetadata, err)
	}
	sp, err := s.serviceProvider(md)
	if err != nil {
		return refused(ReasonNoKey, err)
	}
	var raw []byte
	var relay string
	switch r.Method {
	case http.MethodPost:
		raw, relay, err = readPost(w, r)
	case http.MethodGet:
		raw, relay, err = readRedirect(r.URL.RawQuery, md)
	default:
		err = fmt.Errorf("method %s", r.Method)
	}
	if err != nil {
		if errors.Is(err, errQuerySignature) {
			return refused(ReasonBadSignature, err)
		}
		return refused(ReasonMalformed, err)
	}
	if raw == nil {
		return auth.Result{Outcome: auth.NoCredentials, Reason: ReasonNoResponse}
	}
	var ids []string
	back := "/"
	if p, ok := s.pending.take(relay); ok {
		ids, back = []string{p.requestID}, p.returnTo
	} else if !s.cfg.AllowIDPInitiated {
		return refused(ReasonUnsolicited, errors.New("the RelayState names no login this node started (IdP-initiated logins are not enabled)"))
	} else if isLocalPath(relay) {
		back = relay
	}
	a, err := sp.ParseXMLResponse(raw, ids, s.acsURL)
	if err != nil {
		return refusal(err)
	}
	id, err := s.identity(a)
	if err != nil {
		return refused(ReasonNoUser, err)
	}
	return auth.Result{Outcome: auth.Authenticated, Identity: id, StartSession: true, Redirect: back}
}

func (s *Solution) identity(a *saml.Assertion) (auth.Identity, error) {
	attrs := map[string][]string{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			for _, v := range at.Values {
				attrs[at.Name] = append(attrs[at.Name], v.Value)
				if at.FriendlyName != "" && at.FriendlyName != at.Name {
					attrs[at.FriendlyName] = append(attrs[at.FriendlyName], v.Value)
				}
			}
		}
	}
	first := func(name string) string {
		if v := attrs[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	m := s.cfg.Attributes
	id := auth.Identity{Directory: m.DefaultDirectory, Attributes: attrs, Solution: s.cfg.Name}
	switch {
	case m.UserID != "":
		id.UserID = first(m.UserID)
	case a.Subject != nil && a.Subject.NameID != nil:
		id.UserID = a.Subject.NameID.Value
	}
	if id.UserID == "" {
		return auth.Identity{}, errors.New("the assertion carries no user id (attribute " + m.UserID + " or NameID)")
	}
	if d := first(m.Directory); m.Directory != "" && d != "" {
		id.Directory = d
	}
	if m.Groups != "" {
		id.Groups = attrs[m.Groups]
	}
	for _, st := range a.AuthnStatements {
		if st.SessionNotOnOrAfter != nil && (id.Expires.IsZero() || st.SessionNotOnOrAfter.Before(id.Expires)) {
			id.Expires = *st.SessionNotOnOrAfter
		}
	}
	// What a single logout names the login by, either way.
	if a.Subject != nil && a.Subject.NameID != nil {
		n := a.Subject.NameID
		id.IdPSession = &auth.IdPSession{Solution: s.cfg.Name, NameID: n.Value, NameIDFormat: n.Format,
			NameQualifier: n.NameQualifier, SPNameQualifier: n.SPNameQualifier}
		if len(a.AuthnStatements) > 0 {
			id.IdPSession.SessionIndex = a.AuthnStatements[0].SessionIndex
		}
	}
	return id, nil
}

// refusal maps the library's error to a reason; its detail (never the
// XML) goes to the log only.
func refusal(err error) auth.Result {
	detail := err
	var ire *saml.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		detail = ire.PrivateErr
	}
	for _, k := range []struct {
		kind   error
		reason string
	}{
		{saml.ErrAssertionReplayed, ReasonReplayed},
		{errReplayFull, ReasonReplayFull},
		{saml.ErrInvalidSignature, ReasonBadSignature},
		{saml.ErrUntrustedCertificate, ReasonBadSignature},
		{saml.ErrExpired, ReasonExpired},
		{saml.ErrNotYetValid, ReasonExpired},
		{saml.ErrAudienceMismatch, ReasonAudience},
		{saml.ErrRequestIDMismatch, ReasonInResponseTo},
		{saml.ErrMalformedMessage, ReasonMalformed},
	} {
		if errors.Is(detail, k.kind) {
			return refused(k.reason, detail)
		}
	}
	// The library's error for a response signed nowhere is unexported, and
	// a query signature (HTTP-Redirect logout messages) that no IdP
	// certificate verifies is not classified.
	switch msg := detail.Error(); {
	case strings.Contains(msg, "signature element not present"):
		return refused(ReasonUnsigned, detail)
	case strings.Contains(msg, "cannot validate signature"):
		return refused(ReasonBadSignature, detail)
	}
	return refused(ReasonInvalid, detail)
}

func refused(reason string, err error) auth.Result {
	return auth.Result{Outcome: auth.Refused, Reason: reason, Err: err}
}

// readPost reads the HTTP-POST binding's form (bounded).
func readPost(w http.ResponseWriter, r *http.Request) (raw []byte, relay string, err error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxPostBytes)
	if err := r.ParseForm(); err != nil {
		return nil, "", fmt.Errorf("form: %w", err)
	}
	v := r.PostForm["SAMLResponse"]
	if len(v) == 0 {
		return nil, "", nil
	}
	if len(v) != 1 || len(r.PostForm["RelayState"]) > 1 {
		return nil, "", errors.New("the form repeats SAMLResponse or RelayState")
	}
	raw, err = base64.StdEncoding.DecodeString(strings.TrimSpace(v[0]))
	if err != nil {
		return nil, "", fmt.Errorf("SAMLResponse: %w", err)
	}
	if len(raw) > maxResponseBytes {
		return nil, "", fmt.Errorf("SAMLResponse is over %d bytes", maxResponseBytes)
	}
	return raw, r.PostForm.Get("RelayState"), nil
}

// inflate undoes the HTTP-Redirect binding's DEFLATE, bounded.
func inflate(b []byte) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(b)), maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("SAMLResponse: inflate: %w", err)
	}
	if len(out) > maxResponseBytes {
		return nil, fmt.Errorf("SAMLResponse inflates to over %d bytes", maxResponseBytes)
	}
	return out, nil
}

// isLocalPath accepts a path on this virtual host only: no scheme, no
// host, no //host or /\host the browser would read as another site.
func isLocalPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsRune(p, '\\') ||
		strings.ContainsFunc(p, unicode.IsControl) || strings.ContainsFunc(p, unicode.IsSpace) {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil && !strings.HasPrefix(u.Path, "//") &&
		!strings.ContainsRune(u.Path, '\\')
}

func newToken() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

var (
	_ auth.Solution     = (*Solution)(nil)
	_ auth.Challenger   = (*Solution)(nil)
	_ auth.Endpoints    = (*Solution)(nil)
	_ auth.LoginLink    = (*Solution)(nil)
	_ auth.SingleLogout = (*Solution)(nil)
)
