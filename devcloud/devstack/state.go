package devstack

import (
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/internal/atomicfile"
	"github.com/edgefort/edgefort/internal/pemkey"
	"github.com/edgefort/edgefort/keystore"
)

// Names of what the dev stack prepares in its state directory.
const (
	ConfigFile  = "edgefort.yaml"
	CADir       = "dev-ca"
	HubStore    = "dev-hub-1"
	hubAlias    = "hub"
	trustStore  = "dev-ca"
	hubValidity = 3 * 24 * time.Hour // short on purpose: the expiry warning and its fix are part of the tour

	// IdentityStore signs the identity JWT the hub virtual host hands the
	// engine (behind ref://identity-jwt); its certificate only carries the
	// key, the engine trusts the node's JWKS.
	IdentityStore    = "dev-identity-1"
	IdentityAlias    = "identity"
	identityValidity = 365 * 24 * time.Hour

	DeviceStore    = "dev-device-1" // the update channel's client certificate until the enrollment replaces it
	DeviceAlias    = "device"
	deviceValidity = 365 * 24 * time.Hour

	CloudDir        = "devcloud" // the info file, the policy, the auth module's certificate
	ModulesDir      = "modules"  // dev's own single-file module when the stock one is absent
	scriptsDir      = "scripts"  // node state scripts (none unless a developer adds some)
	DeployedDir     = "deployed" // where `edgefort-dev deploy` puts files by default
	DeviceType      = "edgefort-dev"
	stockModulesDir = "/usr/share/mender/modules/v3"
)

// SingleFileModule is the single-file update module the dev stack installs
// when the stock one is absent, written from the update module protocol
// (v3). Payload files: the file, and dest_dir, filename and (optional)
// permissions holding its target directory, name and octal mode. Download
// saves them under files/ (the module does not read streams);
// ArtifactInstall keeps the file it replaces in tmp/backup and installs by
// copy, sync and rename; ArtifactRollback puts the backup back (or removes
// a file that had no predecessor).
//
//go:embed single-file
var SingleFileModule []byte

// ModulesDirFor is the stock Mender modules directory when it has the
// single-file module, else the state directory's own (see prepareModules).
func ModulesDirFor(stateDir string) string {
	if fi, err := os.Stat(filepath.Join(stockModulesDir, "single-file")); err == nil && fi.Mode().IsRegular() {
		return stockModulesDir
	}
	return filepath.Join(stateDir, ModulesDir)
}

// PrepareState makes, the first time, a dev CA and the stores the
// configuration names; it adds what later versions need to a state
// directory an earlier one prepared.
func PrepareState(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	svc, closeFn, err := agent.OpenKeystoresOffline(dir)
	if err != nil {
		return err
	}
	defer closeFn()
	ks := svc.Stores
	caDir := filepath.Join(dir, CADir)
	ca, err := LoadCA(caDir)
	if errors.Is(err, os.ErrNotExist) {
		ca, err = prepareCA(ks, caDir)
	}
	if err != nil {
		return err
	}
	if err := prepareEntry(ks, ca, DeviceStore, DeviceAlias, "dev-node", deviceValidity); err != nil {
		return err
	}
	if err := prepareEntry(ks, ca, IdentityStore, IdentityAlias, "edgefort dev identity", identityValidity); err != nil {
		return err
	}
	if err := prepareAuthModule(dir, ca); err != nil {
		return err
	}
	if err := prepareKeyPair(svc.KeyPairs); err != nil {
		return err
	}
	return prepareModules(dir)
}

// The dev authentication module's certificate (PEM, under the state
// directory): its server certificate and the client certificate it
// presents to the node's auth API (clients.auth_api trusts the dev CA and
// allows this CN only). curl --cert/--key can use it too.
var (
	AuthModuleCert = filepath.Join(CloudDir, "auth-module.crt")
	AuthModuleKey  = filepath.Join(CloudDir, "auth-module.key")
)

const (
	authModuleCN       = "dev-auth-module"
	authModuleValidity = 365 * 24 * time.Hour
)

// prepareAuthModule issues the auth module's certificate from the dev CA
// unless the state directory has it; the key is written first, so a
// certificate file means a pair.
func prepareAuthModule(dir string, ca *devcloud.CA) error {
	certPath, keyPath := filepath.Join(dir, AuthModuleCert), filepath.Join(dir, AuthModuleKey)
	if _, err := os.Stat(certPath); err == nil {
		return nil
	}
	key, leaf, err := ca.Issue(authModuleCN, []string{"localhost", "127.0.0.1"}, authModuleValidity)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return atomicfile.Write(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o600)
}

// prepareCA makes the dev CA, the hub keystore and the trust store.
func prepareCA(ks *keystore.Manager, caDir string) (*devcloud.CA, error) {
	ca, err := devcloud.NewCA("edgefort dev CA")
	if err != nil {
		return nil, err
	}
	key, leaf, err := ca.Issue("localhost", []string{"localhost", "127.0.0.1", "::1"}, hubValidity)
	if err != nil {
		return nil, err
	}
	steps := []func() error{
		func() error { return ks.CreateStore(HubStore, keystore.KindKeystore) },
		func() error { return ks.PutEntry(HubStore, hubAlias, key, []*x509.Certificate{leaf}) },
		func() error { return ks.CreateStore(trustStore, keystore.KindTruststore) },
		func() error { return ks.PutTrusted(trustStore, "ca", []*x509.Certificate{ca.Cert}) },
		// The CA goes last: its presence marks the state as prepared.
		func() error { return ca.WriteFiles(caDir) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return ca, nil
}

// prepareEntry makes keystore store with a key and a dev-CA certificate
// for cn under alias, unless it has that entry already: the device's
// client certificate for the update channel, the identity JWT's key.
func prepareEntry(ks *keystore.Manager, ca *devcloud.CA, store, alias, cn string, validity time.Duration) error {
	st, err := ks.Resolve(store, keystore.KindKeystore)
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		if err := ks.CreateStore(store, keystore.KindKeystore); err != nil {
			return err
		}
	case err != nil:
		return err
	case st.Entries[alias] != nil:
		return nil
	}
	key, leaf, err := ca.Issue(cn, nil, validity)
	if err != nil {
		return err
	}
	return ks.PutEntry(store, alias, key, []*x509.Certificate{leaf})
}

// prepareKeyPair makes the node's OIDC key pair (edgefort keys) unless it
// has an active one: the dev OpenID provider encrypts ID tokens to it.
func prepareKeyPair(pairs *keystore.KeyPairs) error {
	for _, p := range pairs.List() {
		if p.State == keystore.KeyPairActive {
			return nil
		}
	}
	if _, err := pairs.Generate(keyPairBits); err != nil {
		return fmt.Errorf("the node's key pair: %w", err)
	}
	return nil
}

// keyPairBits is the size of the dev node's key pair: 2048, quick to
// make at every new state directory (edgefort keys rotate makes 4096).
const keyPairBits = 2048

// prepareModules writes dev's single-file update module into the state
// directory when the stock one is not installed.
func prepareModules(dir string) error {
	mdir := ModulesDirFor(dir)
	if mdir == stockModulesDir {
		return nil
	}
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(mdir, "single-file"), SingleFileModule, 0o700)
}

// LoadCA reads the dev CA that PrepareState wrote into dir. An unprepared
// directory gives an error matching os.ErrNotExist.
func LoadCA(dir string) (*devcloud.CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, devcloud.CACertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, devcloud.CAKeyFile))
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("dev CA: %s: no PEM certificate", devcloud.CACertFile)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("dev CA: %s: %w", devcloud.CACertFile, err)
	}
	key, err := pemkey.Parse(keyPEM, nil)
	if err != nil {
		return nil, fmt.Errorf("dev CA: %s: %w", devcloud.CAKeyFile, err)
	}
	return &devcloud.CA{Key: key, Cert: cert}, nil
}
