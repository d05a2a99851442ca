package cloudclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/edgefort/edgefort/cloudclient/outbox"
	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/supervisor"
	"github.com/edgefort/edgefort/keystore"
)

// Keystores are what the node needs of the keystore manager: the TLS
// configuration of its connection and the enrolled device key.
type Keystores interface {
	ClientTLS(ssl keystore.SSL, serverName string, vars keystore.Vars) (*tls.Config, error)
	Resolve(nameOrRef string, want keystore.Kind) (*keystore.Store, error)
}

// NodeDeps are what a Node is built from besides its own section, handed
// over explicitly by the agent.
type NodeDeps struct {
	// Store holds the enrollment and the outbox. Required.
	Store *store.DB
	// Keystores give the TLS configuration and the device key. Required.
	Keystores Keystores
	// Logger receives the logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registerer, if set, receives the authorizer's and outbox's metrics.
	Registerer prom.Registerer
}

// FieldError is a problem with one field of the section that only building
// the node finds (it depends on the state); the agent turns it into a
// FILE:LINE problem of the configuration file.
type FieldError struct {
	Field string // e.g. cloud.enabled
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Node is the running control-plane link: the client authenticated as the
// enrolled device, the authorization cache and the outbox of reports.
type Node struct {
	enrollment *Enrollment
	baseURL    string
	client     *Client
	authorizer *Authorizer
	outbox     *outbox.Outbox
}

// NewNode builds the link from its validated, defaulted section and the
// enrollment in deps.Store; it starts nothing. cfg.Enabled is the
// caller's to check.
func NewNode(cfg Config, deps NodeDeps) (*Node, error) {
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	e, err := LoadEnrollment(deps.Store)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, &FieldError{Field: "cloud.enabled", Err: errors.New("this node is not enrolled: run 'edgefort enroll --url URL --token TOKEN' first")}
	}
	n := &Node{enrollment: e, baseURL: cfg.URL}
	if n.baseURL == "" {
		n.baseURL = e.Endpoints.ControlPlaneURL
	}
	if n.client, err = newDeviceClient(cfg, n.baseURL, e, deps); err != nil {
		return nil, err
	}
	n.authorizer, err = NewAuthorizer(AuthorizerOptions{Client: n.client, Config: cfg.Authorization, Registerer: deps.Registerer, Logger: deps.Logger})
	if err != nil {
		return nil, err
	}
	n.outbox, err = outbox.New(outbox.Options{Store: deps.Store, Sender: n.client, Logger: deps.Logger, Registerer: deps.Registerer, Refused: refusedReport})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// newDeviceClient is the client that signs its token requests with the
// enrolled device key, over TLS configured from the keystores.
func newDeviceClient(cfg Config, base string, e *Enrollment, deps NodeDeps) (*Client, error) {
	srv, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("cloud URL %q: %w", base, err)
	}
	ssl := cfg.SSL
	// An enrolled node trusts the cloud's CA and presents its device
	// certificate unless the configuration names other stores.
	if ssl.Truststore == "" {
		ssl.Truststore = "ref://" + RefCloudTrust
	}
	if ssl.Keystore == "" {
		ssl.Keystore, ssl.KeyAlias = "ref://"+RefDeviceTLS, DeviceAlias
	}
	tlsCfg, err := deps.Keystores.ClientTLS(ssl, srv.Hostname(), keystore.Vars{})
	if err != nil {
		return nil, fmt.Errorf("cloud.ssl: %w", err)
	}
	st, err := deps.Keystores.Resolve("ref://"+RefDeviceTLS, keystore.KindKeystore)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	entry, err := st.Entry(DeviceAlias)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	return New(Options{
		BaseURL:  base,
		TokenURL: e.Endpoints.TokenURL,
		HTTP: &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsCfg,
			ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second,
		}},
		DeviceID: e.DeviceID,
		Key:      entry.Key,
		Timeout:  cfg.Timeout,
		Logger:   deps.Logger,
	})
}

// refusedReport says whether the control plane refuses a batch of reports
// for what is in it (so the outbox must find and drop the bad one), rather
// than being unreachable or refusing this node.
func refusedReport(err error) bool {
	var re *ResponseError
	if !errors.As(err, &re) {
		return false
	}
	switch re.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// Components are the node's parts that run: the outbox's sender.
func (n *Node) Components() []supervisor.Spec {
	return []supervisor.Spec{{Name: "outbox", Runner: n.outbox}}
}

// Enrollment is the identity the node authenticates as.
func (n *Node) Enrollment() *Enrollment { return n.enrollment }

// BaseURL is the control plane the node talks to: cloud.url, or the
// enrollment's.
func (n *Node) BaseURL() string { return n.baseURL }

// Client is the device's control-plane client.
func (n *Node) Client() *Client { return n.client }

// Authorizer is the cache of authorization decisions.
func (n *Node) Authorizer() *Authorizer { return n.authorizer }

// Outbox is the durable queue of reports to the control plane.
func (n *Node) Outbox() *outbox.Outbox { return n.outbox }
