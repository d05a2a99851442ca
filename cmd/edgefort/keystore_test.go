package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// selfSignedPEM makes a key and certificate as PEM files and returns their
// paths.
func selfSignedPEM(t *testing.T, cn string, notAfter time.Time) (keyFile, certFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter, DNSNames: []string{cn}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile = writeFile(t, cn+".key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	certFile = writeFile(t, cn+".crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return keyFile, certFile
}

// TestKeystoreCommandsOffline drives the keystore, truststore and ref
// commands on a state directory with no agent running.
func TestKeystoreCommandsOffline(t *testing.T) {
	dir := t.TempDir()
	runKeystoreSteps(t, "--state-dir="+dir, "--config="+filepath.Join(dir, "none.yaml"))
}

// TestKeystoreCommandsThroughAgent drives the same commands through a
// running agent's admin API: they answer as they do offline (one function
// per operation serves both), and they did go through the agent, which
// holds the state directory's lock all along.
func TestKeystoreCommandsThroughAgent(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "admin.sock")
	cfgPath := writeFile(t, "edgefort.yaml", "version: 1\nstate_dir: "+dir+"\nmetrics: {enabled: false}\nadmin: {socket: "+socket+"}\n")
	agent, agentErr := startEdgefort(t, "run", "--config", cfgPath)
	waitReady(t, socket, agent)
	runKeystoreSteps(t, "--config="+cfgPath)
	if code, out, _ := edgefort(t, "ref", "list", "--config", cfgPath); code != 0 || !strings.Contains(out, "ref://hub-tls  hub-1") {
		t.Errorf("ref list through the agent: exit %d, %q", code, out)
	}
	if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(agent, 15*time.Second); err != nil {
		t.Errorf("agent: %v; stderr:\n%s", err, agentErr)
	}
}

// runKeystoreSteps drives the keystore, truststore, ref and keys commands
// (with target, the flags that say where they act) as an operator
// preparing a node would, including the errors they must make clear.
func runKeystoreSteps(t *testing.T, target ...string) {
	t.Helper()
	keyFile, certFile := selfSignedPEM(t, "hub.example", time.Now().Add(90*24*time.Hour))
	oldKey, oldCert := selfSignedPEM(t, "old.example", time.Now().Add(-time.Hour))
	otherKey, _ := selfSignedPEM(t, "other.example", time.Now().Add(time.Hour))

	steps := []struct {
		args       []string
		wantCode   int
		wantOut    string
		wantErrOut string
	}{
		{[]string{"keystore", "create", "hub-1"}, 0, `created keystore "hub-1"`, ""},
		{[]string{"keystore", "import", "hub-1", "hub", "--key", keyFile, "--cert", certFile}, 0, `imported "hub" into keystore "hub-1"`, ""},
		{[]string{"keystore", "import", "hub-1", "old", "--key", oldKey, "--cert", oldCert}, 0, `imported "old"`, "warning: certificate CN=old.example expired"},
		{[]string{"keystore", "import", "hub-1", "bad", "--key", otherKey, "--cert", certFile}, 1, "", "private key does not match the certificate"},
		{[]string{"keystore", "import", "hub-1", "bad", "--key", certFile, "--cert", certFile}, 1, "", "no PEM private key found"},
		{[]string{"truststore", "create", "trust"}, 0, `created truststore "trust"`, ""},
		{[]string{"truststore", "import", "trust", "ca", "--cert", certFile}, 0, `imported ca into truststore "trust"`, ""},
		{[]string{"ref", "set", "hub-tls", "hub-1"}, 0, "ref://hub-tls -> hub-1", ""},
		{[]string{"ref", "set", "hub-tls", "trust"}, 1, "", `it cannot point at truststore "trust": wrong kind of store`},
		{[]string{"ref", "set", "x", "nope"}, 1, "", `store "nope": not found`},
		{[]string{"keystore", "export-cert", "ref://nope", "hub"}, 1, "", `reference "nope": not found`},
		{[]string{"keystore", "export-cert", "ref://hub-tls", "hub"}, 0, "-----BEGIN CERTIFICATE-----", ""},
		{[]string{"keystore", "list"}, 0, "EXPIRED", ""},
		{[]string{"truststore", "list"}, 0, "trust", ""},
		{[]string{"truststore", "delete", "hub-1"}, 1, "", `"hub-1" is a keystore, not a truststore`},
		{[]string{"keystore", "delete", "hub-1"}, 1, "", `in use by reference "hub-tls"`},
		{[]string{"ref", "list"}, 0, "ref://hub-tls  hub-1", ""},
		{[]string{"keys", "show"}, 0, "no key pairs", ""},
		{[]string{"keys", "generate", "--type", "rsa-1024"}, 2, "", "want rsa-2048 or rsa-4096"},
		{[]string{"keys", "generate"}, 0, "generated RSA-2048 key pair", ""},
		{[]string{"keys", "generate"}, 0, "pending (the active pair keeps serving", ""},
		{[]string{"keys", "show"}, 0, "pending", ""},
		{[]string{"keys", "public", "--format", "jwks", "--which", ""}, 0, `"use": "enc"`, ""},
		{[]string{"keys", "public", "--format", "cert"}, 0, "-----BEGIN CERTIFICATE-----", ""},
		{[]string{"keys", "verify", "--token", certFile}, 1, "", "a compact JWE has 5 (the pending pair is deleted; active pair"},
		{[]string{"keys", "delete", "--which", "pending"}, 1, "", "no pending"},
	}
	for _, s := range steps {
		code, out, errOut := edgefort(t, append(s.args, target...)...)
		if code != s.wantCode || !strings.Contains(out, s.wantOut) || !strings.Contains(errOut, s.wantErrOut) {
			t.Errorf("edgefort %s: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				strings.Join(s.args, " "), code, out, errOut, s.wantCode, s.wantOut, s.wantErrOut)
		}
	}
}

// TestRunRefusesUnknownStore: a configuration that names a store that does
// not exist fails at start, pointing at the line.
func TestRunRefusesUnknownStore(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeFile(t, "edgefort.yaml", "version: 1\nstate_dir: "+dir+"\nmetrics: {enabled: false}\nclients:\n  virtual_hosts:\n    - name: hub\n      listen: 127.0.0.1:0\n      ssl:\n        enabled: true\n        keystore: ref://missing\nkeystores:\n  references:\n    other: nowhere\n")
	code, _, errOut := edgefort(t, "run", "--config", cfgPath)
	want := cfgPath + `:13: keystores.references.other: reference "other": store "nowhere": not found`
	if code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, errOut, want)
	}
	cfgPath = writeFile(t, "edgefort2.yaml", "version: 1\nstate_dir: "+dir+"\nmetrics: {enabled: false}\nclients:\n  virtual_hosts:\n    - name: hub\n      listen: 127.0.0.1:0\n      ssl:\n        enabled: true\n        keystore: ref://missing\n")
	code, _, errOut = edgefort(t, "run", "--config", cfgPath)
	want = cfgPath + `:8: clients.virtual_hosts[0].ssl: `
	if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, `reference "missing"`) {
		t.Errorf("exit %d, stderr %q; want 1 and %q about the reference", code, errOut, want)
	}
}

// TestKeysRotate starts a rotation offline: a pending RSA-4096 pair next
// to the active one, what the identity provider needs (public key,
// certificate, JWKS of the pending pair), and the verification login URL
// of the configuration's oidc solution.
func TestKeysRotate(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeFile(t, "edgefort.yaml", `version: 1
state_dir: `+dir+`
clients:
  virtual_hosts:
    - name: hub
      listen: [10.0.0.5:8443]
      host_aliases: [hub.example]
      ssl: {enabled: true}
      authentication:
        - session: {}
        - oidc: {issuer: "https://idp.example.com", client_id: edge, client_secret: s, verify_path: /verify-keys}
`)
	if code, _, errOut := edgefort(t, "keys", "generate", "--config", cfgPath, "--state-dir", dir); code != 0 {
		t.Fatalf("keys generate: exit %d: %s", code, errOut)
	}
	code, out, errOut := edgefort(t, "keys", "rotate", "--config", cfgPath, "--state-dir", dir)
	if code != 0 {
		t.Fatalf("keys rotate: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"generated RSA-4096 key pair", "pending", "BEGIN PUBLIC KEY", "BEGIN CERTIFICATE", `"use": "enc"`, "https://hub.example:8443/verify-keys"} {
		if !strings.Contains(out, want) {
			t.Errorf("keys rotate printed no %q:\n%s", want, out)
		}
	}
	if code, out, _ := edgefort(t, "keys", "show", "--config", cfgPath, "--state-dir", dir); code != 0 || !strings.Contains(out, "active") || !strings.Contains(out, "pending  ") {
		t.Errorf("keys show after rotate: exit %d:\n%s", code, out)
	}
	if code, _, errOut := edgefort(t, "keys", "rotate", "--type", "rsa-1024", "--config", cfgPath, "--state-dir", dir); code == 0 || !strings.Contains(errOut, "rsa-1024") {
		t.Errorf("keys rotate --type rsa-1024: exit %d, %q; want a usage error naming it", code, errOut)
	}
}
