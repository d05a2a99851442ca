package devcloud

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// AuthModule is a fake authentication module and portal for the dev
// environment: it "authenticates" whoever is named (no password), then
// asks the node's authentication API, over mutual TLS, for a ticket
// (GET /login) or a portal session token (POST /portal/login). It shows
// the ticket and session-module flows end to end; it is no identity
// provider.
type AuthModule struct {
	opts   AuthModuleOptions
	srv    httpsServer
	client *http.Client
	node   atomic.Pointer[nodeAddrs] // set once the agent has bound them
}

// nodeAddrs are where the node listens: its auth API and the origins
// (https://host:port) of its virtual hosts, the only places the module
// sends a browser with a ticket.
type nodeAddrs struct {
	api     string
	origins map[string]bool
}

// AuthModuleOptions configure NewAuthModule.
type AuthModuleOptions struct {
	// Certificate is the module's server certificate and the client
	// certificate it presents to the node's auth API. Required.
	Certificate tls.Certificate
	// RootCAs verify the node's auth API. Required.
	RootCAs *x509.CertPool
	// Directory is the user directory of every user. Default "dev".
	Directory string
	// Groups are the groups of users by id (the module's "directory").
	Groups map[string][]string
	// Cookie carries the portal's session token; the node's
	// session_module solution reads it. Default "PortalSession".
	Cookie string
	// Logger receives one line per login. Nil: discard.
	Logger *slog.Logger
}

// The query parameters and limits of the module.
const (
	moduleTicketParam = "qlikTicket"
	moduleReturnParam = "return_to"
	moduleUserParam   = "user"
	maxModuleUser     = 64
	maxModuleReply    = 64 << 10
	maxModuleForm     = 8 << 10
)

// NewAuthModule checks opts; Start serves.
func NewAuthModule(opts AuthModuleOptions) (*AuthModule, error) {
	if len(opts.Certificate.Certificate) == 0 || opts.RootCAs == nil {
		return nil, errors.New("auth module: a certificate and root CAs are required")
	}
	if opts.Directory == "" {
		opts.Directory = "dev"
	}
	if opts.Cookie == "" {
		opts.Cookie = "PortalSession"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs, Certificates: []tls.Certificate{opts.Certificate}}
	return &AuthModule{opts: opts, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true},
	}}, nil
}

// Start serves the module on a free loopback port (HTTPS, its own
// certificate).
func (m *AuthModule) Start() error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", m.serveLogin)
	mux.HandleFunc("POST /portal/login", m.servePortalLogin)
	mux.HandleFunc("POST /portal/logout", m.servePortalLogout)
	conf := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{m.opts.Certificate}}
	return m.srv.start("auth module", conf, mux, m.opts.Logger)
}

// URL is https://127.0.0.1:PORT, or empty before Start.
func (m *AuthModule) URL() string { return m.srv.url() }

// Close stops the module.
func (m *AuthModule) Close() error { return m.srv.close() }

// SetNode gives the node's auth API base URL and its virtual hosts' base
// URLs (https://host:port), known only once the agent has bound them;
// until then logins answer 503.
func (m *AuthModule) SetNode(authAPI string, virtualHosts []string) {
	n := &nodeAddrs{api: authAPI, origins: map[string]bool{}}
	for _, v := range virtualHosts {
		n.origins[strings.TrimSuffix(v, "/")] = true
	}
	m.node.Store(n)
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<title>edgefort dev login</title>
<h1>edgefort dev authentication module</h1>
<p>Dev only: whoever you name is signed in, no password.</p>
<form method="get" action="/login">
<input type="hidden" name="return_to" value="{{.}}">
<label>User <input name="user" value="alice" autofocus></label>
<button>Sign in</button>
</form>
`))

// serveLogin is the ticket flow: without ?user= a form, with it a ticket
// for that user and a 303 to return_to carrying the ticket. return_to
// must be on one of the node's virtual hosts: a ticket sent elsewhere
// would hand a login to whoever is there.
func (m *AuthModule) serveLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	node := m.node.Load()
	if node == nil {
		http.Error(w, "the node's authentication API is not known yet", http.StatusServiceUnavailable)
		return
	}
	back, err := url.Parse(q.Get(moduleReturnParam))
	if err != nil || back.User != nil || !node.origins[back.Scheme+"://"+back.Host] {
		http.Error(w, "return_to must be an URL on one of the node's virtual hosts", http.StatusBadRequest)
		return
	}
	user := q.Get(moduleUserParam)
	if user == "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		loginPage.Execute(w, back.String())
		return
	}
	if !validModuleUser(user) {
		http.Error(w, "user: 1 to 64 letters, digits, '.', '_' or '-'", http.StatusBadRequest)
		return
	}
	var tk struct {
		Ticket string `json:"ticket"`
	}
	body := map[string]any{"user_id": user, "user_directory": m.opts.Directory, "groups": m.opts.Groups[user], "target_url": back.String()}
	if !m.call(w, "POST", "/v1/tickets", body, http.StatusCreated, &tk) {
		return
	}
	bq := back.Query()
	bq.Set(moduleTicketParam, tk.Ticket)
	back.RawQuery = bq.Encode()
	m.opts.Logger.Info("auth module: ticket issued", "user", user)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, back.String(), http.StatusSeeOther)
}

// servePortalLogin is the portal flow: it registers a session token for
// the user named in the form and sets it in the portal's cookie, which
// the node's session_module solution reads on the same host.
func (m *AuthModule) servePortalLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxModuleForm)
	user := r.FormValue(moduleUserParam)
	if !validModuleUser(user) {
		http.Error(w, "user: 1 to 64 letters, digits, '.', '_' or '-'", http.StatusBadRequest)
		return
	}
	var s struct {
		SessionID string `json:"session_id"`
	}
	body := map[string]any{"user_id": user, "user_directory": m.opts.Directory, "groups": m.opts.Groups[user]}
	if !m.call(w, "POST", "/v1/sessions", body, http.StatusCreated, &s) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: m.opts.Cookie, Value: s.SessionID, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	m.opts.Logger.Info("auth module: portal session registered", "user", user)
	fmt.Fprintf(w, "signed in to the portal as %s/%s (cookie %s)\n", m.opts.Directory, user, m.opts.Cookie)
}

// servePortalLogout deletes the cookie's session at the node.
func (m *AuthModule) servePortalLogout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(m.opts.Cookie)
	if err != nil || c.Value == "" {
		http.Error(w, "not signed in to the portal", http.StatusUnauthorized)
		return
	}
	if !m.call(w, "DELETE", "/v1/sessions/"+url.PathEscape(c.Value), nil, http.StatusNoContent, nil) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: m.opts.Cookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true})
	fmt.Fprintln(w, "signed out of the portal")
}

// call sends body to the node's auth API and decodes the answer into out
// when it has status want; otherwise it answers w (503 before
// SetAuthAPI, 502 with the node's status and error) and reports false.
// Neither tickets nor session ids are logged or echoed.
func (m *AuthModule) call(w http.ResponseWriter, method, path string, body any, want int, out any) bool {
	node := m.node.Load()
	if node == nil {
		http.Error(w, "the node's authentication API is not known yet", http.StatusServiceUnavailable)
		return false
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return false
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, node.api+path, rd)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		m.opts.Logger.Warn("auth module: the node's auth API is unreachable", "error", err)
		http.Error(w, "the node's authentication API is unreachable", http.StatusBadGateway)
		return false
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxModuleReply))
	if err == nil && resp.StatusCode == want && out != nil {
		err = json.Unmarshal(data, out)
	}
	if err != nil || resp.StatusCode != want {
		var p struct {
			Error string `json:"error"`
		}
		json.Unmarshal(data, &p)
		http.Error(w, fmt.Sprintf("the node refused: %d %s", resp.StatusCode, p.Error), http.StatusBadGateway)
		return false
	}
	return true
}

func validModuleUser(s string) bool {
	if s == "" || len(s) > maxModuleUser {
		return false
	}
	return !strings.ContainsFunc(s, func(c rune) bool {
		return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-')
	})
}
