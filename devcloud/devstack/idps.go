package devstack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/clientapi/oidcauth"
	"github.com/edgefort/edgefort/clientapi/samlauth"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/internal/httpbody"
	"github.com/edgefort/edgefort/internal/npmproject"
	"github.com/edgefort/edgefort/internal/procgroup"
	"github.com/edgefort/edgefort/keystore"
)

// The dev identity providers are the tests' own peers, run for people:
// npm samlify (internal/peertest/testdata/samlify/idp.js, in its
// interactive mode: a login form) and npm oidc-provider
// (testdata/oidcprovider/provider.mjs, with the dev accounts: its login
// and consent pages), as child processes of edgefort-dev, stopped with
// it. The node's virtual host sso signs browsers in through either.

// IdPOptions turn the dev identity providers on.
type IdPOptions struct {
	// Enabled starts them and adds the virtual host sso. Default off (the
	// tests of other features need no node); edgefort-dev turns it on
	// unless --no-idps.
	Enabled bool
	// ProjectsDir holds the npm projects samlify and oidcprovider (this
	// repository's internal/peertest/testdata). Empty: FindProjects.
	ProjectsDir string
}

// DevUsers are the dev IdPs' users and their fixed passwords (as
// idp.js's users): alice is a developer in space sales, bob a viewer
// there through the group analysts.
var DevUsers = map[string]DevUser{
	devUser:    {Password: "alice-dev", Groups: []string{"users", "staff"}},
	viewerUser: {Password: "bob-dev", Groups: []string{"analysts"}},
}

// DevUser is a user of the dev IdPs.
type DevUser struct {
	Password string   `json:"password"`
	Groups   []string `json:"groups"`
}

// The virtual host sso and what its configuration names.
const (
	SSOHost       = "sso"
	oidcClientID  = "edgefort-dev"
	idpStartLimit = time.Minute // bounds the wait for a peer's ready line
	idpStopGrace  = 5 * time.Second
	samlIdPDir    = "saml-idp" // under CloudDir: the samlify IdP's signing pair
	oidcIdPDir    = "oidc-idp" // under CloudDir: the provider's TLS pair
)

// ErrNoNode means node or npm is missing, which the dev IdPs need.
var ErrNoNode = errors.New("the dev identity providers need node and npm (Debian: apt-get install nodejs npm); edgefort-dev --no-idps starts without them and without federated logins")

// FindProjects returns the directory of the npm projects the dev IdPs
// run: that of the checkout edgefort-dev was built from, else one found
// from the working directory up.
func FindProjects() (string, error) {
	var tried []string
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Join(filepath.Dir(file), "..", "..", "internal", "peertest", "testdata")
		if isProjects(dir) {
			return filepath.Clean(dir), nil
		}
		tried = append(tried, filepath.Clean(dir))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dir := filepath.Join(d, "internal", "peertest", "testdata")
			if isProjects(dir) {
				return dir, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
		tried = append(tried, wd+" and its parents")
	}
	return "", fmt.Errorf("the dev identity providers' npm projects (internal/peertest/testdata/samlify and oidcprovider of the edgefort repository) are not in %s: run edgefort-dev from the repository or give --idp-projects", strings.Join(tried, ", "))
}

func isProjects(dir string) bool {
	for _, f := range []string{"samlify/idp.js", "oidcprovider/provider.mjs"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return false
		}
	}
	return true
}

// idps are the running dev IdPs and the front door of the virtual host
// sso.
type idps struct {
	front   *forwarder
	base    string         // https://localhost:PORT, the sso host as browsers reach it
	samlIdP string         // samlify's base URL
	issuer  string         // the provider's issuer
	secret  string         // the node's client secret at the provider
	roots   *x509.CertPool // the dev CA: the sso host's certificate
}

// idpTools are what the dev IdPs need, found before anything starts.
type idpTools struct {
	node, npm, dir string
}

// findIdPTools finds node, npm and the npm projects, or says what is
// missing (ErrNoNode for node and npm).
func findIdPTools(opts IdPOptions) (idpTools, error) {
	node, nodeErr := exec.LookPath("node")
	npm, npmErr := exec.LookPath("npm")
	if nodeErr != nil || npmErr != nil {
		return idpTools{}, ErrNoNode
	}
	dir := opts.ProjectsDir
	if dir == "" {
		var err error
		if dir, err = FindProjects(); err != nil {
			return idpTools{}, err
		}
	} else if !isProjects(dir) {
		return idpTools{}, fmt.Errorf("%s has no samlify/idp.js and oidcprovider/provider.mjs (the dev IdPs' npm projects, internal/peertest/testdata of the edgefort repository)", dir)
	}
	return idpTools{node: node, npm: npm, dir: dir}, nil
}

// startIdPs installs the npm projects when needed and starts samlify and
// oidc-provider, with the provider's client registered for the node (its
// ID tokens encrypted to the node's active key pair). The sso host's
// front door is bound here so that its URL is known before the node runs.
func (s *Stack) startIdPs(ctx context.Context, tools idpTools, ca *devcloud.CA, log *slog.Logger) (*idps, error) {
	node, dir := tools.node, tools.dir
	for _, p := range []struct{ sub, pkg string }{{"samlify", "samlify"}, {"oidcprovider", "oidc-provider"}} {
		if err := npmproject.Install(ctx, tools.npm, filepath.Join(dir, p.sub), p.pkg); err != nil {
			return nil, fmt.Errorf("install the dev IdP %s: %w", p.pkg, err)
		}
	}
	front, err := listenForwarder()
	if err != nil {
		return nil, err
	}
	s.onClose(front.Close)
	d := &idps{front: front, base: "https://localhost:" + strconv.Itoa(front.Port()), secret: newToken(), roots: ca.Pool()}
	if d.samlIdP, err = s.startSAMLIdP(ctx, node, dir, log); err != nil {
		return nil, fmt.Errorf("samlify IdP: %w", err)
	}
	if d.issuer, err = s.startOIDCProvider(ctx, node, dir, ca, d, log); err != nil {
		return nil, fmt.Errorf("oidc-provider: %w", err)
	}
	return d, nil
}

// startSAMLIdP runs idp.js interactive with a signing pair of the state
// directory (made the first time); it returns the IdP's base URL.
func (s *Stack) startSAMLIdP(ctx context.Context, node, dir string, log *slog.Logger) (string, error) {
	keyFile, certFile, err := samlIdPPair(filepath.Join(s.stateDir, CloudDir, samlIdPDir))
	if err != nil {
		return "", err
	}
	// The "other" pair (the tests' wrong-key variant) is never used here.
	cmd := exec.Command(node, filepath.Join(dir, "samlify", "idp.js"), keyFile, certFile, keyFile, certFile, "", "interactive")
	cmd.Dir = filepath.Join(dir, "samlify")
	line, err := s.startPeer(ctx, "samlify", cmd, log)
	if err != nil {
		return "", err
	}
	base, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		return "", fmt.Errorf("unexpected first line %q", line)
	}
	return base, nil
}

// samlIdPPair makes the samlify IdP's RSA signing key and self-signed
// certificate under dir unless they are there (the key first: a
// certificate file means a pair).
func samlIdPPair(dir string) (keyFile, certFile string, err error) {
	keyFile, certFile = filepath.Join(dir, "idp.key"), filepath.Join(dir, "idp.crt")
	if _, err := os.Stat(certFile); err == nil {
		return keyFile, certFile, nil
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "edgefort dev SAML IdP"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", "", err
	}
	if err := writePair(dir, keyFile, certFile, key, der); err != nil {
		return "", "", err
	}
	return keyFile, certFile, nil
}

func writePair(dir, keyFile, certFile string, key any, certDER []byte) error {
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		return err
	}
	return atomicfile.Write(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o600)
}

// startOIDCProvider runs provider.mjs on a socket bound here, over TLS
// with a dev-CA certificate (the node trusts ref://dev-trust), with the
// dev accounts and one client: the node, redirect URI on the sso host,
// ID tokens encrypted (RSA-OAEP-256, A256GCM) to its active key pair.
func (s *Stack) startOIDCProvider(ctx context.Context, node, dir string, ca *devcloud.CA, d *idps, log *slog.Logger) (string, error) {
	jwks, err := activeJWKS(s.stateDir)
	if err != nil {
		return "", err
	}
	pairDir := filepath.Join(s.stateDir, CloudDir, oidcIdPDir)
	key, leaf, err := ca.Issue("edgefort dev OpenID provider", []string{"127.0.0.1"}, 365*24*time.Hour)
	if err != nil {
		return "", err
	}
	keyFile, certFile := filepath.Join(pairDir, "tls.key"), filepath.Join(pairDir, "tls.crt")
	if err := writePair(pairDir, keyFile, certFile, key, leaf.Raw); err != nil {
		return "", err
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return "", err
	}
	lnFile, err := ln.File()
	ln.Close() // lnFile's duplicate keeps the socket bound, for node
	if err != nil {
		return "", err
	}
	defer lnFile.Close() // node holds its own copy once started
	issuer := "https://" + ln.Addr().String()
	cfg, err := json.Marshal(map[string]any{
		"issuer": issuer, "cert": certFile, "key": keyFile, "accounts": DevUsers,
		"clients": []map[string]any{{
			"client_id": oidcClientID, "client_secret": d.secret,
			"redirect_uris":  []string{d.base + oidcauth.DefaultCallbackPath},
			"grant_types":    []string{"authorization_code"},
			"response_types": []string{"code"},
			"jwks":           jwks,
			// What the node asks for besides openid (dev.yaml's scopes).
			"scope":                           "openid profile email groups",
			"id_token_encrypted_response_alg": "RSA-OAEP-256", "id_token_encrypted_response_enc": "A256GCM",
		}},
	})
	if err != nil {
		return "", err
	}
	cmd := exec.Command(node, filepath.Join(dir, "oidcprovider", "provider.mjs"))
	cmd.Dir = filepath.Join(dir, "oidcprovider")
	cmd.ExtraFiles = []*os.File{lnFile}
	cmd.Stdin = strings.NewReader(string(cfg))
	line, err := s.startPeer(ctx, "oidc-provider", cmd, log)
	if err != nil {
		return "", err
	}
	if line != "ready" {
		return "", fmt.Errorf("unexpected first line %q", line)
	}
	return issuer, nil
}

// activeJWKS reads the node's active key pair's public JWK Set from the
// state directory (PrepareState made the pair).
func activeJWKS(stateDir string) (json.RawMessage, error) {
	svc, closeFn, err := agent.OpenKeystoresOffline(stateDir)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	raw, err := svc.KeyPairs.JWKS(keystore.KeyPairActive)
	if err != nil {
		return nil, fmt.Errorf("the node's active key pair: %w", err)
	}
	return raw, nil
}

// startPeer starts cmd in its own process group (Ctrl-C in a terminal
// reaches edgefort-dev only, which stops it in turn; it is killed if
// edgefort-dev dies) and returns its first stdout line, its "listening"
// line, waited for up to idpStartLimit. Its stderr goes to the log, line
// by line; it is stopped by Close.
func (s *Stack) startPeer(ctx context.Context, name string, cmd *exec.Cmd, log *slog.Logger) (string, error) {
	cmd.SysProcAttr = procgroup.Attr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	tail := &procgroup.TailBuffer{Max: 4096}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	plog := log.With("peer", name, "pid", cmd.Process.Pid)
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			tail.Write(append(sc.Bytes(), '\n'))
			plog.Info("dev IdP says", "line", sc.Text())
		}
	}()
	exited := make(chan struct{})
	lines := make(chan string, 1)
	stdoutDone := make(chan struct{})
	go func() {
		defer close(stdoutDone)
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(io.Discard, r)
	}()
	var waitErr error
	go func() {
		<-stderrDone
		<-stdoutDone // Wait closes the pipes: read them to the end first
		waitErr = cmd.Wait()
		close(exited)
	}()
	s.onClose(func() {
		procgroup.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(idpStopGrace):
			procgroup.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	timer := time.NewTimer(idpStartLimit)
	defer timer.Stop()
	select {
	case line := <-lines:
		if line == "" {
			<-exited
			return "", fmt.Errorf("exited before it was ready (%v): %s", waitErr, tail.String())
		}
		plog.Info("dev IdP ready", "line", line)
		return line, nil
	case <-ctx.Done():
		return "", ctx.Err()
	case <-timer.C:
		return "", fmt.Errorf("not ready after %s: %s", idpStartLimit, tail.String())
	}
}

func (d *idps) info() IdPsInfo {
	return IdPsInfo{
		SSO:        d.base,
		SAMLLogin:  d.base + samlauth.DefaultPathPrefix + "/login?return_to=/",
		OIDCLogin:  d.base + oidcauth.DefaultLoginPath + "?return_to=/",
		SAMLIdP:    d.samlIdP,
		OIDCIssuer: d.issuer,
		Users:      DevUsers,
	}
}

// connect points the front door at the sso host's address (its URL as the
// agent's status gives it) and gives samlify the node's SP metadata.
func (d *idps) connect(ctx context.Context, hostURL string) error {
	addr, ok := strings.CutPrefix(hostURL, "https://")
	if !ok {
		return fmt.Errorf("the virtual host %s is not running (status: %q)", SSOHost, hostURL)
	}
	d.front.SetTarget(addr)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: d.roots, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	metaURL := d.base + samlauth.DefaultPathPrefix + "/metadata"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metaURL, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("read the SP metadata: %w", err)
	}
	meta, err := httpbody.Read(resp, 1<<20, "SP metadata")
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("read the SP metadata: %s answered %s", metaURL, resp.Status)
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, d.samlIdP+"/sp", bytes.NewReader(meta))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/samlmetadata+xml")
	resp, err = hc.Do(req)
	if err != nil {
		return fmt.Errorf("give samlify the SP metadata: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("give samlify the SP metadata: %s", resp.Status)
	}
	return nil
}
