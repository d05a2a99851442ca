// Command clientapi prepares and serves what scripts/bench/clientapi.sh
// needs besides nginx, HAProxy and wrk: devcloud's control plane (the
// cloud that authorizes each request, with a policy letting the bench user
// read the bench space), a node state directory enrolled with it, the RSA
// key pair of the user tokens and one RS256 token (the same for both
// proxies), and edgefort's configurations. It writes into -dir, creates
// the file "ready" last, and serves the control plane until the parent
// of this process is gone or a signal arrives; it then prints how many
// authorization checks the control plane answered (the decision cache's
// effect over the whole run).
//
// Files in -dir:
//
//	state/           the node's state directory, enrolled
//	jwt-pub.pem      the user tokens' public key (PKIX PEM), for both proxies
//	token            the RS256 user token (iss, aud, sub, iat, exp, kid)
//	issuer, audience the claims a proxy checks
//	ports            two free loopback ports: nginx's, HAProxy's
//	edgefort-{jwt-cached,jwt-uncached,tls}.yaml  the three configurations
//
// The configurations name the keystore "bench-tls", alias "bench", which
// the script imports (the same certificate as HAProxy's) with
// `edgefort keystore`, and a target endpoint at nginx's port. edgefort
// listens on 127.0.0.1:0; the script reads the bound port back.
//
//	go run ./scripts/bench/clientapi -dir DIR
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/devcloud"
)

const (
	issuer   = "https://idp.bench.edgefort.invalid"
	audience = "edgefort-bench"
	user     = "bench"
	space    = "bench"
	// The policy's allow TTL is the agent's longest (max_ttl 5m), so a
	// run asks the cloud about once per 5 minutes, not per request.
	policy = `version: 1
ttl: {allow: 5m, deny: 10s}
roles:
  viewer: [app.read]
spaces:
  ` + space + `:
    members:
      user:` + user + `: viewer
      user:anonymous: viewer
`
)

func main() {
	dir := flag.String("dir", "", "output `directory` (made if needed; required)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "clientapi: -dir is required")
		os.Exit(2)
	}
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "clientapi:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ca, err := devcloud.NewCA("edgefort bench CA")
	if err != nil {
		return err
	}
	caDir := filepath.Join(dir, "ca")
	if err := ca.WriteFiles(caDir); err != nil {
		return err
	}
	pol, err := devcloud.ParsePolicy([]byte(policy))
	if err != nil {
		return fmt.Errorf("bench policy: %w", err)
	}
	cp, err := devcloud.NewControlPlane(devcloud.ControlPlaneOptions{CA: ca, Policy: pol, Logger: log})
	if err != nil {
		return err
	}
	if err := cp.Start(); err != nil {
		return err
	}
	defer cp.Close()
	stateDir := filepath.Join(dir, "state")
	if err := enroll(dir, stateDir, cp, filepath.Join(caDir, devcloud.CACertFile), log); err != nil {
		return err
	}
	if err := writeToken(dir); err != nil {
		return err
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	if err := writeFile(dir, "ports", strings.Join(ports, " ")+"\n"); err != nil {
		return err
	}
	for _, v := range variants {
		if err := writeFile(dir, "edgefort-"+v.name+".yaml", edgefortConfig(stateDir, filepath.Join(dir, "jwt-pub.pem"), ports[0], v)); err != nil {
			return err
		}
	}
	if err := writeFile(dir, "ready", ""); err != nil {
		return err
	}
	wait()
	st := cp.Stats()
	fmt.Printf("control plane: %d authorization checks (%d authorize calls, %d batch calls), %d access tokens issued\n",
		st.Checks, st.AuthorizeCalls, st.BatchCalls, st.TokensIssued)
	return nil
}

// enroll enrolls stateDir with the control plane, as `edgefort enroll`
// does, from a minimal configuration (the bench's own ones carry the
// client API sections, which only the binary under test need accept).
func enroll(dir, stateDir string, cp *devcloud.ControlPlane, caFile string, log *slog.Logger) error {
	path := filepath.Join(dir, "enroll.yaml")
	text := fmt.Sprintf("version: 1\nstate_dir: %q\nmetrics: {enabled: false}\ncloud: {enabled: true}\n", stateDir)
	if err := writeFile(dir, "enroll.yaml", text); err != nil {
		return err
	}
	cfg, err := config.Parse(path, []byte(text))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	_, err = agent.EnrollOffline(context.Background(), cfg, agent.EnrollOptions{
		URL: cp.URL(), Token: cp.NewEnrollmentToken(), CAFile: caFile, Force: true,
	}, log)
	if err != nil {
		return fmt.Errorf("enroll with the bench control plane: %w", err)
	}
	return nil
}

// writeToken makes the RSA 2048 key of user tokens, writes its public
// half, and one RS256 token valid for a day. The kid is the key's RFC 7638
// thumbprint (what edgefort derives for key_files); HAProxy ignores it.
func writeToken(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := writeFile(dir, "jwt-pub.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))); err != nil {
		return err
	}
	thumb, err := (&jose.JSONWebKey{Key: &key.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return err
	}
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": issuer, "aud": audience, "sub": user, "groups": []string{"staff"},
		"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(),
	})
	t.Header["kid"] = base64.RawURLEncoding.EncodeToString(thumb)
	tok, err := t.SignedString(key)
	if err != nil {
		return err
	}
	for name, v := range map[string]string{"token": tok, "issuer": issuer, "audience": audience} {
		if err := writeFile(dir, name, v+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// freePorts binds n loopback ports and releases them for nginx and HAProxy,
// which cannot listen on port 0 nor be handed a listener here. Between the
// release and their bind another process could take a port: they then fail
// to start and the script stops with their error. edgefort binds port 0.
func freePorts(n int) ([]string, error) {
	var ports []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}

// A variant is one edgefort configuration under test.
type variant struct {
	name string
	// jwt: a JWT authentication chain (else the anonymous solution and an
	// anonymous route); cache: the verified-token cache on.
	jwt, cache bool
}

var variants = []variant{
	{name: "jwt-cached", jwt: true, cache: true},
	{name: "jwt-uncached", jwt: true, cache: false},
	{name: "tls"},
}

// edgefortConfig renders one variant. The client API has no route without
// authorization (every route names an action), so the TLS-only variant is
// the closest it allows: the anonymous solution alone and an anonymous
// route, authorized as "anonymous" from the decision cache (see
// docs/benchmarks.md).
func edgefortConfig(stateDir, pubKey, nginxPort string, v variant) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# edgefort under scripts/bench/clientapi.sh: %s
version: 1
state_dir: %q
log: {level: warn}
metrics: {enabled: false}
cloud:
  enabled: true
  authorization: {max_ttl: 5m}
clients:
  target_endpoints:
    - name: nginx
      url: http://127.0.0.1:%s
  virtual_hosts:
    - name: bench
      listen: [127.0.0.1:0]
      ssl: {enabled: true, keystore: bench-tls, key_alias: bench}
`, v.name, stateDir, nginxPort)
	route := "{name: file, match: \"GET /\", target: nginx, action: app.read, resource: {type: space, id: " + space + "}"
	if v.jwt {
		fmt.Fprintf(&b, `      authentication:
        - jwt:
            issuer: %q
            audience: [%q]
            algorithms: [RS256]
            key_files: [%q]
            cache: {enabled: %t}
      routes:
        - %s}
`, issuer, audience, pubKey, v.cache, route)
	} else {
		fmt.Fprintf(&b, `      authentication:
        - anonymous: {name: anonymous}
      routes:
        - %s, anonymous: true}
`, route)
	}
	return b.String()
}

func writeFile(dir, name, text string) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600)
}

// wait returns at SIGINT/SIGTERM (the script's exit trap), or when the
// parent that started this process is gone (the script was killed).
func wait() {
	parent := os.Getppid()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-sig:
			return
		case <-tick.C:
			if os.Getppid() != parent {
				return
			}
		}
	}
}
