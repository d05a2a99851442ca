package oidcauth

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/clientapi/jwtauth"
	"github.com/edgefort/edgefort/keystore"
)

// Kind is the solution's kind in the configuration.
const Kind = "oidc"

// Defaults.
const (
	DefaultCallbackPath     = "/.edgefort/oidc/callback"
	DefaultLoginPath        = "/.edgefort/oidc/login"
	DefaultVerifyPath       = "/.edgefort/oidc/verify"
	DefaultJWKSPath         = "/.edgefort/oidc/jwks.json"
	DefaultStateCookie      = "edgefort_oidc"
	DefaultLoginTimeout     = 10 * time.Minute
	DefaultMaxPendingLogins = 10000
	DefaultTokenAuth        = "client_secret_basic"
)

// DefaultEncryptionAlgorithms are the key-management algorithms the ID
// token may be encrypted with; the keystore's allow-list bounds them.
var DefaultEncryptionAlgorithms = []string{"RSA-OAEP-256", "RSA-OAEP"}

// Config is one OpenID provider: the
// clients.virtual_hosts[].authentication[].oidc entry.
type Config struct {
	// Name identifies the solution in logs and metrics. Default "oidc".
	Name string `yaml:"name"`
	// DisplayName names the provider to users on the virtual host's login
	// chooser (shown when the virtual host has several interactive
	// logins). Default Name.
	DisplayName string `yaml:"display_name"`
	// Issuer is the provider's issuer URL (https); its discovery document
	// is at Issuer/.well-known/openid-configuration. Required.
	Issuer string `yaml:"issuer"`
	// SSL is the TLS block for the provider (discovery, token endpoint,
	// JWK Set): truststore, client certificate, name check.
	SSL keystore.SSL `yaml:"ssl"`
	// ClientID is the node's client id at the provider. Required.
	ClientID string `yaml:"client_id"`
	// ClientSecret authenticates the node at the token endpoint with
	// client_secret_basic or client_secret_post.
	ClientSecret string `yaml:"client_secret"`
	// TokenAuth is client_secret_basic, client_secret_post or
	// private_key_jwt. Default client_secret_basic.
	TokenAuth string `yaml:"token_auth"`
	// PrivateKeyJWT is the keystore key that signs the client assertion
	// (RS256 or ES256, kid its RFC 7638 thumbprint) with private_key_jwt;
	// the provider gets its public key.
	PrivateKeyJWT KeyRef `yaml:"private_key_jwt"`
	// CallbackPath is the redirect URI's path on the virtual host,
	// registered at the provider. Default /.edgefort/oidc/callback.
	CallbackPath string `yaml:"callback_path"`
	// LoginPath starts a login (browsers without credentials are sent
	// there). Default /.edgefort/oidc/login.
	LoginPath string `yaml:"login_path"`
	// VerifyPath starts a verification login of the pending key pair
	// (edgefort keys rotate). Default /.edgefort/oidc/verify.
	VerifyPath string `yaml:"verify_path"`
	// JWKSPath serves the node's encryption JWK Set for providers that
	// fetch it. Default /.edgefort/oidc/jwks.json.
	JWKSPath string `yaml:"jwks_path"`
	// Scopes asked for besides openid. Default [profile, email].
	Scopes []string `yaml:"scopes"`
	// Claims maps ID token claims to the user: user_id default "sub",
	// directory_value default the solution's name.
	Claims jwtauth.Claims `yaml:"claims"`
	// RequireEncryption refuses ID tokens that are not encrypted to the
	// node's key pair (a downgrade). Default true.
	RequireEncryption *bool `yaml:"require_encryption"`
	// SigningAlgorithms allowed for the inner ID token. Default RS256,
	// RS384, RS512, PS256, ES256.
	SigningAlgorithms []string `yaml:"signing_algorithms"`
	// EncryptionAlgorithms allowed for the ID token's key management.
	// Default [RSA-OAEP-256, RSA-OAEP].
	EncryptionAlgorithms []string `yaml:"encryption_algorithms"`
	// LoginTimeout bounds a login from the redirect to the callback.
	// Default 10m.
	LoginTimeout time.Duration `yaml:"login_timeout"`
	// MaxPendingLogins bounds logins in progress. Default 10000.
	MaxPendingLogins int `yaml:"max_pending_logins"`
	// StateCookie binds a login to the browser that started it. Default
	// edgefort_oidc.
	StateCookie string `yaml:"state_cookie"`
}

// KeyRef names a private key in a keystore.
type KeyRef struct {
	// Keystore is a keystore name or ref://reference.
	Keystore string `yaml:"keystore"`
	// KeyAlias picks the entry; empty: the keystore's only one.
	KeyAlias string `yaml:"key_alias"`
}

// SetDefaults fills the zero fields.
func (c *Config) SetDefaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.Name, Kind)
	def(&c.DisplayName, c.Name)
	def(&c.TokenAuth, DefaultTokenAuth)
	def(&c.CallbackPath, DefaultCallbackPath)
	def(&c.LoginPath, DefaultLoginPath)
	def(&c.VerifyPath, DefaultVerifyPath)
	def(&c.JWKSPath, DefaultJWKSPath)
	def(&c.StateCookie, DefaultStateCookie)
	def(&c.Claims.UserID, "sub")
	def(&c.Claims.DirectoryValue, c.Name)
	if c.Scopes == nil {
		c.Scopes = []string{"profile", "email"}
	}
	if c.RequireEncryption == nil {
		t := true
		c.RequireEncryption = &t
	}
	if c.SigningAlgorithms == nil {
		c.SigningAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "ES256"}
	}
	if c.EncryptionAlgorithms == nil {
		c.EncryptionAlgorithms = slices.Clone(DefaultEncryptionAlgorithms)
	}
	if c.LoginTimeout == 0 {
		c.LoginTimeout = DefaultLoginTimeout
	}
	if c.MaxPendingLogins == 0 {
		c.MaxPendingLogins = DefaultMaxPendingLogins
	}
}

// Validate checks a defaulted Config; every problem is an auth.FieldError.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, &auth.FieldError{Field: field, Err: err}) }
	if u, err := url.Parse(c.Issuer); c.Issuer == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		bad("issuer", fmt.Errorf("%q: an https URL is required", c.Issuer))
	}
	if c.ClientID == "" {
		bad("client_id", errors.New("required"))
	}
	if len(c.DisplayName) > 100 || strings.ContainsFunc(c.DisplayName, unicode.IsControl) {
		bad("display_name", fmt.Errorf("%.120q: at most 100 characters, no control characters", c.DisplayName))
	}
	switch c.TokenAuth {
	case "client_secret_basic", "client_secret_post":
		if c.ClientSecret == "" {
			bad("client_secret", fmt.Errorf("required with token_auth %s", c.TokenAuth))
		}
	case "private_key_jwt":
		if c.PrivateKeyJWT.Keystore == "" {
			bad("private_key_jwt.keystore", errors.New("required with token_auth private_key_jwt"))
		}
	default:
		bad("token_auth", fmt.Errorf("%q: use client_secret_basic, client_secret_post or private_key_jwt", c.TokenAuth))
	}
	paths := map[string]string{}
	for _, p := range []struct{ field, v string }{
		{"callback_path", c.CallbackPath}, {"login_path", c.LoginPath}, {"verify_path", c.VerifyPath}, {"jwks_path", c.JWKSPath},
	} {
		if !strings.HasPrefix(p.v, "/") || strings.ContainsAny(p.v, "?#{} ") {
			bad(p.field, fmt.Errorf("%q: an absolute path without query or wildcards is required", p.v))
		} else if other, dup := paths[p.v]; dup {
			bad(p.field, fmt.Errorf("%q is also %s", p.v, other))
		}
		paths[p.v] = p.field
	}
	for _, a := range c.EncryptionAlgorithms {
		if !slices.Contains(DefaultEncryptionAlgorithms, a) {
			bad("encryption_algorithms", fmt.Errorf("%q: allowed are %s", a, strings.Join(DefaultEncryptionAlgorithms, ", ")))
		}
	}
	if c.LoginTimeout < time.Second || c.LoginTimeout > time.Hour {
		bad("login_timeout", fmt.Errorf("%s: between 1s and 1h", c.LoginTimeout))
	}
	if c.MaxPendingLogins < 0 {
		bad("max_pending_logins", fmt.Errorf("%d: must be positive", c.MaxPendingLogins))
	}
	return errors.Join(errs...)
}
