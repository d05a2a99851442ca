package samlauth

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// Kind is the solution's configured kind.
const Kind = "saml"

// Defaults, named once: agent/config fills them in and New fills the same
// ones into zero fields.
const (
	DefaultPathPrefix      = "/.edgefort/saml"
	DefaultMetadataRefresh = time.Hour
	DefaultRequestTTL      = 10 * time.Minute
	DefaultMaxPending      = 10000
	DefaultMaxReplayIDs    = 100000
	DefaultDirectory       = "saml"
)

// Config is a saml entry of a virtual host's authentication chain: the
// node as a SAML 2.0 service provider of one identity provider.
type Config struct {
	// Name identifies the solution in logs and metrics. Default "saml".
	Name string `yaml:"name"`
	// DisplayName names the IdP to users on the virtual host's login
	// chooser (shown when the virtual host has several interactive
	// logins). Default Name.
	DisplayName string `yaml:"display_name"`
	// BaseURL is the virtual host's URL as browsers reach it
	// (scheme://host[:port]); the metadata, ACS and entity id are under
	// it. Required.
	BaseURL string `yaml:"base_url"`
	// EntityID is the service provider's entity id. Default the metadata
	// URL (BaseURL + PathPrefix + "/metadata").
	EntityID string `yaml:"entity_id"`
	// PathPrefix is where the solution's endpoints are served: /metadata
	// (the SP metadata), /login (a login start, ?return_to=/page), /acs
	// (the assertion consumer service, HTTP-POST and HTTP-Redirect), and
	// with single_logout /slo and /logout. Default /.edgefort/saml.
	PathPrefix string `yaml:"path_prefix"`
	// IDPMetadataFile is the identity provider's metadata (XML). Exactly
	// one of it and IDPMetadataURL.
	IDPMetadataFile string `yaml:"idp_metadata_file"`
	// IDPMetadataURL is fetched (https, or http on loopback only) and
	// refreshed every MetadataRefresh; the last good copy is kept when a
	// refresh fails.
	IDPMetadataURL string `yaml:"idp_metadata_url"`
	// MetadataRefresh is how often the metadata is read again. Default 1h.
	MetadataRefresh time.Duration `yaml:"metadata_refresh"`
	// AllowIDPInitiated accepts responses the node did not ask for
	// (no InResponseTo). Default false: they are refused.
	AllowIDPInitiated bool `yaml:"allow_idp_initiated"`
	// RequestTTL is how long a login sent to the IdP may take. Default 10m.
	RequestTTL time.Duration `yaml:"request_ttl"`
	// MaxPending bounds the logins in flight; beyond it the oldest is
	// dropped (its user starts again). Default 10000.
	MaxPending int `yaml:"max_pending"`
	// MaxReplayIDs bounds the assertion ids kept against replay (until
	// each expires); when full, new logins are refused. Default 100000.
	MaxReplayIDs int `yaml:"max_replay_ids"`
	// Keystore names the keystore (or ref://reference) holding the SP's
	// key and certificate: encrypted assertions are decrypted with it (an
	// RSA key), and AuthnRequests signed with it when SignRequests is set;
	// the SP metadata publishes the certificate. Empty: neither.
	Keystore string `yaml:"keystore"`
	// KeyAlias is the entry of Keystore; empty when it holds only one.
	KeyAlias string `yaml:"key_alias"`
	// SignRequests signs AuthnRequests (the HTTP-Redirect query signature,
	// RSA-SHA256 or ECDSA-SHA256 by the key's type). Needs Keystore.
	SignRequests bool `yaml:"sign_requests"`
	// SingleLogout turns on SAML single logout with this IdP: the SLO
	// endpoint (path_prefix + /slo, HTTP-Redirect and HTTP-POST) in the SP
	// metadata, where the IdP's signed LogoutRequests end the user's node
	// sessions from this IdP; and path_prefix + /logout (POST with the
	// session's CSRF token), which ends the node session and sends the
	// browser to the IdP with a LogoutRequest. The node signs what it
	// sends with Keystore's key, so it needs Keystore. Default false.
	SingleLogout bool `yaml:"single_logout"`
	// Attributes map the assertion to the user.
	Attributes Attributes `yaml:"attributes"`
}

// Attributes name the assertion's attributes the user is taken from.
type Attributes struct {
	// UserID is the attribute holding the user id. Empty: the NameID.
	UserID string `yaml:"user_id"`
	// Directory is the attribute holding the user's directory. Empty:
	// the fixed DefaultDirectory value below.
	Directory string `yaml:"directory"`
	// DefaultDirectory is the directory when Directory names no attribute
	// or the assertion lacks it. Default "saml".
	DefaultDirectory string `yaml:"default_directory"`
	// Groups is the attribute holding the user's groups (every value).
	Groups string `yaml:"groups"`
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.Name == "" {
		c.Name = Kind
	}
	if c.DisplayName == "" {
		c.DisplayName = c.Name
	}
	if c.PathPrefix == "" {
		c.PathPrefix = DefaultPathPrefix
	}
	c.PathPrefix = strings.TrimRight(c.PathPrefix, "/")
	if c.MetadataRefresh == 0 {
		c.MetadataRefresh = DefaultMetadataRefresh
	}
	if c.RequestTTL == 0 {
		c.RequestTTL = DefaultRequestTTL
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxReplayIDs == 0 {
		c.MaxReplayIDs = DefaultMaxReplayIDs
	}
	if c.Attributes.DefaultDirectory == "" {
		c.Attributes.DefaultDirectory = DefaultDirectory
	}
	if c.EntityID == "" && c.BaseURL != "" {
		c.EntityID = strings.TrimRight(c.BaseURL, "/") + c.PathPrefix + "/metadata"
	}
}

// Validate returns the first unusable setting as an auth.FieldError.
func (c *Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	switch {
	case c.BaseURL == "":
		return &auth.FieldError{Field: "base_url", Err: errors.New("required (the virtual host's URL as browsers reach it, e.g. https://node.example:8443)")}
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "":
		return &auth.FieldError{Field: "base_url", Err: fmt.Errorf("%q is not scheme://host[:port]", c.BaseURL)}
	}
	if !strings.HasPrefix(c.PathPrefix, "/") || strings.ContainsAny(c.PathPrefix, "{} ?#") {
		return &auth.FieldError{Field: "path_prefix", Err: fmt.Errorf("%q is not an absolute path", c.PathPrefix)}
	}
	if err := checkDisplayName(c.DisplayName); err != nil {
		return err
	}
	if (c.IDPMetadataFile == "") == (c.IDPMetadataURL == "") {
		return &auth.FieldError{Field: "idp_metadata_file", Err: errors.New("set exactly one of idp_metadata_file and idp_metadata_url")}
	}
	if c.IDPMetadataURL != "" {
		if err := checkMetadataURL(c.IDPMetadataURL); err != nil {
			return &auth.FieldError{Field: "idp_metadata_url", Err: err}
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
		min   time.Duration
	}{{"metadata_refresh", c.MetadataRefresh, time.Minute}, {"request_ttl", c.RequestTTL, 10 * time.Second}} {
		if d.v < d.min {
			return &auth.FieldError{Field: d.field, Err: fmt.Errorf("%s is below the minimum %s", d.v, d.min)}
		}
	}
	if c.SignRequests && c.Keystore == "" {
		return &auth.FieldError{Field: "sign_requests", Err: errors.New("needs keystore (the key requests are signed with)")}
	}
	if c.SingleLogout && c.Keystore == "" {
		return &auth.FieldError{Field: "single_logout", Err: errors.New("needs keystore (the key logout messages are signed with)")}
	}
	if c.KeyAlias != "" && c.Keystore == "" {
		return &auth.FieldError{Field: "key_alias", Err: errors.New("needs keystore")}
	}
	if c.MaxPending < 1 {
		return &auth.FieldError{Field: "max_pending", Err: fmt.Errorf("%d: must be at least 1", c.MaxPending)}
	}
	if c.MaxReplayIDs < 1 {
		return &auth.FieldError{Field: "max_replay_ids", Err: fmt.Errorf("%d: must be at least 1", c.MaxReplayIDs)}
	}
	return nil
}

func checkMetadataURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1" {
			return nil
		}
	}
	return fmt.Errorf("%q: https is required (http only on loopback)", raw)
}

// maxDisplayName bounds display_name, shown on the login chooser.
const maxDisplayName = 100

func checkDisplayName(v string) error {
	if len(v) > maxDisplayName || strings.ContainsFunc(v, unicode.IsControl) {
		return &auth.FieldError{Field: "display_name", Err: fmt.Errorf("%.120q: at most %d characters, no control characters", v, maxDisplayName)}
	}
	return nil
}
