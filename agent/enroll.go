package agent

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/keystore"
)

// Where an enrollment puts the node's identity; cloudclient owns them.
const (
	RefDeviceTLS  = cloudclient.RefDeviceTLS
	RefCloudTrust = cloudclient.RefCloudTrust
	DeviceAlias   = cloudclient.DeviceAlias
)

// Enrollment is the node's identity from the control plane; cloudclient
// owns it.
type Enrollment = cloudclient.Enrollment

// ErrAlreadyEnrolled is returned by Enroll when the node is enrolled and
// Force is not set.
var ErrAlreadyEnrolled = errors.New("this node is already enrolled")

// EnrollOptions are what `edgefort enroll` passes.
type EnrollOptions struct {
	URL   string // control plane base URL
	Token string // one-time enrollment token
	// KeyType is "ecdsa" (P-256, the default) or "rsa" (3072 bits).
	KeyType string
	// CAFile is a PEM bundle to trust for the enrollment call; empty uses
	// the system roots.
	CAFile string
	// Force enrolls again when the node is already enrolled.
	Force bool
}

// EnrollOffline enrolls the node of cfg's state directory with the
// control plane: it makes the device key here (the private key never
// leaves the node), sends a CSR with the one-time token, and keeps the
// certificate and the cloud's CA under references the links use. No agent
// may run on the state directory meanwhile.
func EnrollOffline(ctx context.Context, cfg *config.Config, opts EnrollOptions, log *slog.Logger) (*Enrollment, error) {
	db, err := store.Open(cfg.StateDir, store.Options{Logger: log})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w; stop the agent, enroll, and start it again", err)
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	old, err := cloudclient.LoadEnrollment(db)
	if err != nil {
		return nil, err
	}
	if old != nil && !opts.Force {
		return nil, fmt.Errorf("%w as %s (since %s, control plane %s); pass --force with a new token to enroll again",
			ErrAlreadyEnrolled, old.DeviceID, old.Enrolled.Format(time.RFC3339), old.Endpoints.ControlPlaneURL)
	}
	key, keyType, err := newDeviceKey(opts.KeyType)
	if err != nil {
		return nil, err
	}
	hc, err := enrollHTTP(opts.CAFile)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	resp, err := cloudclient.Enroll(ctx, cloudclient.EnrollOptions{
		BaseURL: opts.URL, HTTP: hc, Token: opts.Token, Key: key, Hostname: host, AgentVersion: Version(),
	})
	if err != nil {
		return nil, err
	}
	chain, err := parseCertsPEM([]byte(resp.CertificateChain))
	if err != nil {
		return nil, fmt.Errorf("enrollment answer: certificate chain: %w", err)
	}
	cas, err := parseCertsPEM([]byte(resp.CABundle))
	if err != nil {
		return nil, fmt.Errorf("enrollment answer: CA bundle: %w", err)
	}

	ks, err := openKeystores(cfg.StateDir, log)
	if err != nil {
		return nil, err
	}
	e := &Enrollment{
		DeviceID:   resp.DeviceID,
		Endpoints:  resp.Endpoints,
		Keystore:   "device-" + resp.DeviceID,
		Truststore: "cloud-ca-" + resp.DeviceID,
		KeyType:    keyType,
		Enrolled:   time.Now().UTC(),
	}
	m := ks.Stores
	for _, step := range []func() error{
		func() error { return recreateStore(m, e.Keystore, keystore.KindKeystore) },
		func() error { return m.PutEntry(e.Keystore, DeviceAlias, key, chain) },
		func() error { return recreateStore(m, e.Truststore, keystore.KindTruststore) },
		func() error { return m.PutTrusted(e.Truststore, "cloud", cas) },
		func() error { return m.SetRef(RefDeviceTLS, e.Keystore) },
		func() error { return m.SetRef(RefCloudTrust, e.Truststore) },
		// Last: its presence says the enrollment is complete.
		func() error { return cloudclient.SaveEnrollment(db, e) },
	} {
		if err := step(); err != nil {
			return nil, fmt.Errorf("store the enrollment: %w", err)
		}
	}
	if old != nil {
		// The previous identity's stores, now that nothing points at them.
		for _, name := range []string{old.Keystore, old.Truststore} {
			if name != e.Keystore && name != e.Truststore {
				if err := m.DeleteStore(name); err != nil && !errors.Is(err, keystore.ErrNotFound) {
					log.Warn("could not remove the previous enrollment's store", "store", name, "err", err)
				}
			}
		}
	}
	return e, nil
}

func recreateStore(m *keystore.Manager, name string, kind keystore.Kind) error {
	err := m.CreateStore(name, kind)
	if errors.Is(err, keystore.ErrExists) {
		if err := m.DeleteStore(name); err != nil {
			return err
		}
		err = m.CreateStore(name, kind)
	}
	return err
}

func newDeviceKey(kind string) (crypto.Signer, string, error) {
	switch kind {
	case "", "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return k, "ecdsa-p256", err
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 3072)
		return k, "rsa-3072", err
	}
	return nil, "", fmt.Errorf("key type %q: want ecdsa or rsa", kind)
}

func enrollHTTP(caFile string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		data, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", caFile)
		}
		tc.RootCAs = pool
	}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tc}}, nil
}

func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs, nil
}
