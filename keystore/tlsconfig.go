package keystore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/edgefort/edgefort/internal/loglimit"
)

// The TLS configurations below hold no certificate, key or pool. They hold
// the SSL block's settings (store names and references) and resolve them
// at every handshake from the Manager's current snapshot: one atomic load
// and a few map lookups, no lock, no disk, no parsing. Repointing a
// reference or replacing an alias therefore reaches the next handshake of
// every listener and client, while connections already established keep
// the certificate they were set up with.

// Vars are per-request values for target endpoints whose SSL block names
// stores through variables ({ssl.keystore}, {ssl.truststore},
// {ssl.key_alias}), after Apigee's flow variables. The client API fills
// them from the route. The zero Vars is fine when no variable is used; a
// variable used with an empty value is an error.
type Vars struct{ Keystore, Truststore, KeyAlias string }

// The variables a target endpoint may use, each in its own field only, as
// the whole value (agent/config validates the same).
const (
	varKeystore   = "{ssl.keystore}"
	varTruststore = "{ssl.truststore}"
	varKeyAlias   = "{ssl.key_alias}"
)

// Log keys of the handshake warnings.
const (
	logFieldError      = "error"
	logFieldServerName = "server_name"
	logFieldSubject    = "subject"
)

var (
	clientAuthUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	serverAuthUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
)

// systemRoots are the operating system's CAs, for outbound connections
// without a truststore; loaded once, on first use.
var systemRoots = sync.OnceValues(x509.SystemCertPool)

// ServerTLS is the config for an inbound virtual host.
//
// ssl.Keystore "" serves the built-in self-signed certificate (store
// BuiltinStore, alias BuiltinAlias; EnsureBuiltin generates it) and logs a
// warning that clients will not trust it. ssl.KeyAlias "" picks the
// keystore's only alias. With ssl.ClientAuthEnabled a client certificate
// is required and verified, for client authentication, against
// ssl.Truststore as resolved at that handshake. ssl.MinVersion is "1.2"
// (the default when empty) or "1.3". Whether TLS is on at all
// (ssl.Enabled) is the caller's decision.
//
// Everything the block names must resolve now, so that a bad setting fails
// at start with an error naming it; each handshake resolves again.
//
// Client certificates are verified by the config's VerifyConnection, not
// by crypto/tls, because the trusted CAs are only known per handshake. So
// ConnectionState.VerifiedChains stays empty: PeerCertificates[0] is the
// verified client certificate. For the same reason the certificate request
// names no acceptable CAs; clients pick their certificate themselves.
func (m *Manager) ServerTLS(ssl SSL) (*tls.Config, error) {
	for _, f := range [...]struct{ name, value string }{{"ssl.keystore", ssl.Keystore}, {"ssl.truststore", ssl.Truststore}, {"ssl.key_alias", ssl.KeyAlias}} {
		if strings.Contains(f.value, "{") {
			return nil, fmt.Errorf("%s %q: variables are allowed only on target endpoints", f.name, f.value)
		}
	}
	if ssl.CommonName != "" || ssl.WildcardMatch {
		return nil, errors.New("ssl.common_name: only outbound connections check the peer's name; remove it from the virtual host")
	}
	if ssl.IgnoreValidationErrors {
		return nil, errors.New("ssl.ignore_validation_errors: applies only to outbound connections")
	}
	version, err := tlsVersion(ssl.MinVersion)
	if err != nil {
		return nil, err
	}
	s := &serverTLS{m: m, cert: certSource{store: ssl.Keystore, alias: ssl.KeyAlias}, warn: loglimit.New(m.log, logEvery, m.now)}
	builtin := ssl.Keystore == ""
	if builtin {
		if ssl.KeyAlias != "" {
			return nil, fmt.Errorf("ssl.key_alias %q: set, but no keystore is named", ssl.KeyAlias)
		}
		s.cert = certSource{store: BuiltinStore, alias: BuiltinAlias}
	}
	snap := m.current()
	if _, err := s.cert.get(snap); err != nil {
		if builtin {
			return nil, fmt.Errorf("ssl.keystore is empty and the built-in certificate served in its place has not been generated: %w", errors.Unwrap(err))
		}
		return nil, err
	}
	cfg := &tls.Config{MinVersion: version, GetCertificate: s.getCertificate}
	if ssl.ClientAuthEnabled {
		if ssl.Truststore == "" {
			return nil, errors.New("ssl.truststore: required when client_auth_enabled is true (client certificates are verified against it)")
		}
		if _, err := snap.resolve(ssl.Truststore, KindTruststore); err != nil {
			return nil, fmt.Errorf("ssl.truststore: %w", err)
		}
		s.truststore = ssl.Truststore
		// Ask for any certificate and verify it ourselves: crypto/tls
		// would verify against a ClientCAs pool fixed in the config.
		cfg.ClientAuth = tls.RequireAnyClientCert
		cfg.VerifyConnection = s.verifyClient
	}
	if builtin {
		m.log.Warn("virtual host serves the built-in self-signed certificate; clients will not trust it",
			"fix", "import the host's certificate into a keystore and name it in ssl.keystore (ref://NAME)")
	}
	return cfg, nil
}

// ClientTLS is the config for an outbound connection (target endpoint or
// cloud link) to the server named serverName (a host name or IP address,
// without port), which is also sent as SNI.
//
// The server's chain is verified against ssl.Truststore as resolved at
// each handshake ("" = the system's roots). Then its name: with
// ssl.CommonName "", the standard host name check of serverName; else the
// leaf's subject CN or one of its DNS names must equal CommonName (case
// aside), and with ssl.WildcardMatch a CommonName "*.host.com" also
// matches exactly one label in place of "*" (a.host.com, not a.b.host.com
// nor host.com). Without WildcardMatch "*.host.com" is compared literally.
// With ssl.IgnoreValidationErrors a failed verification is logged as a
// warning, at every handshake, and the server accepted; a store that does
// not resolve still fails the handshake.
//
// With ssl.ClientAuthEnabled the keystore's alias (ssl.KeyAlias, or the
// only one) is presented when the server asks, resolved per handshake.
// vars supplies the values of variables used in ssl.Keystore,
// ssl.Truststore and ssl.KeyAlias.
func (m *Manager) ClientTLS(ssl SSL, serverName string, vars Vars) (*tls.Config, error) {
	keystore, err := expand("ssl.keystore", ssl.Keystore, varKeystore, vars.Keystore)
	if err != nil {
		return nil, err
	}
	truststore, err := expand("ssl.truststore", ssl.Truststore, varTruststore, vars.Truststore)
	if err != nil {
		return nil, err
	}
	alias, err := expand("ssl.key_alias", ssl.KeyAlias, varKeyAlias, vars.KeyAlias)
	if err != nil {
		return nil, err
	}
	version, err := tlsVersion(ssl.MinVersion)
	if err != nil {
		return nil, err
	}
	if ssl.WildcardMatch && ssl.CommonName == "" {
		return nil, errors.New("ssl.wildcard_match: set, but common_name is empty")
	}
	if ssl.CommonName == "" && serverName == "" {
		return nil, errors.New("no server name to verify the server's certificate against; pass one or set ssl.common_name")
	}
	c := &clientTLS{
		m:          m,
		serverName: serverName,
		truststore: truststore,
		commonName: ssl.CommonName,
		wildcard:   ssl.WildcardMatch,
		ignore:     ssl.IgnoreValidationErrors,
		warn:       loglimit.New(m.log, logEvery, m.now),
	}
	snap := m.current()
	if _, _, err := c.roots(snap); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		ServerName: serverName,
		MinVersion: version,
		// crypto/tls verifies against a RootCAs pool fixed in the config
		// and knows nothing of common_name, wildcard_match or
		// ignore_validation_errors. InsecureSkipVerify hands verification
		// to VerifyConnection, which always runs and verifies the chain
		// and the name against the truststore of this handshake. The
		// server's proof of its key is still checked by crypto/tls.
		InsecureSkipVerify: true,
		VerifyConnection:   c.verifyServer,
	}
	if ssl.ClientAuthEnabled {
		if keystore == "" {
			return nil, errors.New("ssl.keystore: required when client_auth_enabled is true (the client certificate comes from it)")
		}
		c.cert = certSource{store: keystore, alias: alias}
		if _, err := c.cert.get(snap); err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = c.getClientCertificate
	}
	return cfg, nil
}

// serverTLS is what a ServerTLS config resolves at each handshake.
type serverTLS struct {
	m          *Manager
	cert       certSource
	truststore string // client certificates are verified against it; "" = no client auth
	warn       *loglimit.Limiter
}

func (s *serverTLS) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, err := s.cert.get(s.m.current())
	if err != nil {
		err = fmt.Errorf("keystore: server certificate: %w", err)
		s.warn.Warn(err.Error(), "tls handshake refused: store lookup failed", logFieldError, err)
		return nil, err
	}
	return c, nil
}

func (s *serverTLS) verifyClient(cs tls.ConnectionState) error {
	st, err := s.m.current().resolve(s.truststore, KindTruststore)
	if err != nil {
		err = fmt.Errorf("keystore: verify client certificate: ssl.truststore: %w", err)
		s.warn.Warn(err.Error(), "tls handshake refused: store lookup failed", logFieldError, err)
		return err
	}
	if len(cs.PeerCertificates) == 0 { // RequireAnyClientCert has refused this already
		return errors.New("keystore: verify client certificate: none presented")
	}
	if err := verifyChain(cs.PeerCertificates, st.Pool(), s.m.now(), clientAuthUsage); err != nil {
		reason := fmt.Errorf("not trusted by truststore %q: %w", st.Name, err)
		s.warn.Warn("client certificate refused: "+reason.Error(), "tls handshake refused: client certificate not trusted",
			logFieldSubject, cs.PeerCertificates[0].Subject.String(), logFieldError, reason)
		return fmt.Errorf("keystore: client certificate %q %w", cs.PeerCertificates[0].Subject, reason)
	}
	return nil
}

// clientTLS is what a ClientTLS config resolves at each handshake.
type clientTLS struct {
	m          *Manager
	serverName string
	cert       certSource // presented when the server asks; zero without client auth
	truststore string     // "" = system roots
	commonName string
	wildcard   bool
	ignore     bool
	warn       *loglimit.Limiter
}

func (c *clientTLS) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	cert, err := c.cert.get(c.m.current())
	if err != nil {
		err = fmt.Errorf("keystore: client certificate for %q: %w", c.serverName, err)
		c.warn.Warn(err.Error(), "tls handshake refused: store lookup failed", logFieldServerName, c.serverName, logFieldError, err)
		return nil, err
	}
	return cert, nil
}

func (c *clientTLS) verifyServer(cs tls.ConnectionState) error {
	roots, where, err := c.roots(c.m.current())
	if err != nil {
		err = fmt.Errorf("keystore: verify server %q: %w", c.serverName, err)
		c.warn.Warn(err.Error(), "tls handshake refused: store lookup failed", logFieldServerName, c.serverName, logFieldError, err)
		return err
	}
	err = c.check(cs.PeerCertificates, roots, where)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("keystore: verify server %q: %w", c.serverName, err)
	if c.ignore {
		c.m.log.Warn("accepting a server certificate that failed verification, because ssl.ignore_validation_errors is true",
			logFieldServerName, c.serverName, logFieldError, err)
		return nil
	}
	return err
}

// roots returns the pool to verify the server against and says where it
// comes from, for errors.
func (c *clientTLS) roots(snap *snapshot) (*x509.CertPool, string, error) {
	if c.truststore == "" {
		pool, err := systemRoots()
		if err != nil {
			return nil, "", fmt.Errorf("ssl.truststore is empty and the system roots cannot be loaded: %w", err)
		}
		return pool, "the system roots", nil
	}
	st, err := snap.resolve(c.truststore, KindTruststore)
	if err != nil {
		return nil, "", fmt.Errorf("ssl.truststore: %w", err)
	}
	return st.Pool(), fmt.Sprintf("truststore %q", st.Name), nil
}

// check verifies the server's chain, then its name.
func (c *clientTLS) check(certs []*x509.Certificate, roots *x509.CertPool, where string) error {
	if len(certs) == 0 {
		return errors.New("the server sent no certificate")
	}
	if err := verifyChain(certs, roots, c.m.now(), serverAuthUsage); err != nil {
		return fmt.Errorf("certificate %q not trusted by %s: %w", certs[0].Subject, where, err)
	}
	leaf := certs[0]
	if c.commonName == "" {
		return leaf.VerifyHostname(c.serverName)
	}
	if !nameMatches(leaf, c.commonName, c.wildcard) {
		how := "exactly"
		if c.wildcard && strings.HasPrefix(c.commonName, "*.") {
			how = "with one label in place of *"
		}
		return fmt.Errorf("certificate with CN %q and DNS names %q does not match common_name %q %s", leaf.Subject.CommonName, leaf.DNSNames, c.commonName, how)
	}
	return nil
}

// nameMatches reports whether the certificate's subject CN or one of its
// DNS names is want, case aside. With wildcard, want "*.host.com" also
// matches any name with exactly one non-empty label before ".host.com".
func nameMatches(cert *x509.Certificate, want string, wildcard bool) bool {
	suffix, isWildcard := strings.CutPrefix(want, "*")
	isWildcard = isWildcard && wildcard && strings.HasPrefix(suffix, ".")
	match := func(name string) bool {
		if strings.EqualFold(name, want) {
			return true
		}
		if !isWildcard || len(name) <= len(suffix) || !strings.EqualFold(name[len(name)-len(suffix):], suffix) {
			return false
		}
		label := name[:len(name)-len(suffix)]
		return !strings.ContainsAny(label, ".*")
	}
	if match(cert.Subject.CommonName) {
		return true
	}
	for _, name := range cert.DNSNames {
		if match(name) {
			return true
		}
	}
	return false
}

// verifyChain verifies certs (leaf first, then whatever intermediates the
// peer sent) up to roots for usage.
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, now time.Time, usage []x509.ExtKeyUsage) error {
	if roots == nil {
		// A nil pool would make x509 use the system roots.
		return errors.New("no trusted certificates")
	}
	opts := x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: usage}
	if len(certs) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	_, err := certs[0].Verify(opts)
	return err
}

// certSource is where a config takes its certificate: a keystore setting
// (NAME or ref://NAME) and an alias ("" = the store's only one).
type certSource struct {
	store string
	alias string
}

func (c certSource) get(snap *snapshot) (*tls.Certificate, error) {
	st, err := snap.resolve(c.store, KindKeystore)
	if err != nil {
		return nil, fmt.Errorf("ssl.keystore: %w", err)
	}
	var e *Entry
	if c.alias == "" {
		e, err = st.only()
	} else {
		e, err = st.Entry(c.alias)
	}
	if err != nil {
		if strings.HasPrefix(c.store, RefScheme) {
			return nil, fmt.Errorf("ssl.keystore %s: %w", c.store, err)
		}
		return nil, fmt.Errorf("ssl.keystore: %w", err)
	}
	return e.TLSCertificate(), nil
}

// expand replaces a field that is exactly its variable with the request's
// value.
func expand(field, value, variable, varValue string) (string, error) {
	switch {
	case value == variable:
		if varValue == "" {
			return "", fmt.Errorf("%s: variable %s has no value for this request", field, variable)
		}
		return varValue, nil
	case strings.Contains(value, "{"):
		return "", fmt.Errorf("%s %q: the only variable allowed here is %s, as the whole value", field, value, variable)
	}
	return value, nil
}

func tlsVersion(v string) (uint16, error) {
	switch v {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("ssl.min_version %q is not one of 1.2, 1.3", v)
}

// logEvery is how often one distinct handshake warning is logged at most:
// a broken store breaks every handshake, and a line per 10 s says so.
const logEvery = 10 * time.Second
