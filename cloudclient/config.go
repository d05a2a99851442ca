package cloudclient

import (
	"time"

	"github.com/edgefort/edgefort/keystore"
)

// Config configures the control-plane link: the configuration's cloud
// section (agent/config composes it by alias and validates it).
type Config struct {
	// Enabled turns the link on. Default false.
	Enabled bool `yaml:"enabled"`
	// URL is the control plane's base URL (https). Empty: the one the
	// enrollment (edgefort enroll) gave.
	URL string `yaml:"url"`
	// SSL is the TLS block for the connection. An enrolled node trusts
	// ref://cloud-trust and presents ref://device-tls (alias device)
	// unless a truststore or keystore is named here.
	SSL keystore.SSL `yaml:"ssl"`
	// Timeout bounds each call. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Authorization configures the cache of authorization decisions.
	Authorization Authorization `yaml:"authorization"`
}
