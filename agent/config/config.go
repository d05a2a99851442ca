// Package config owns edgefort's configuration file: its typed shape, strict
// decoding from YAML with line numbers, the one place where defaults are
// filled in, and validation that reports every problem at once as
// FILE:LINE: FIELD: message.
//
// A component that owns its section's type (keystore.SSL,
// clientapi.VirtualHost, cloudclient.Config, iot.Config, deploy.Config) is
// composed here by an alias, so that imports point one way: this package
// imports the components, never the reverse.
//
// Every component has its section here from the start, even those built
// later, so that one file describes the whole node. Components receive their
// own section after Load has decoded, defaulted and validated it; they never
// read the file themselves.
package config

import (
	"fmt"
	"time"

	"github.com/edgefort/edgefort/clientapi"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/iot"
	"github.com/edgefort/edgefort/keystore"
	"github.com/edgefort/edgefort/updater/deploy"
)

// CurrentVersion is the only configuration format version this build reads.
const CurrentVersion = 1

// DefaultPath is where `edgefort run` looks when neither --config nor
// EDGEFORT_CONFIG names a file.
const DefaultPath = "/etc/edgefort/edgefort.yaml"

// EnvConfig names the environment variable that overrides DefaultPath.
const EnvConfig = "EDGEFORT_CONFIG"

// Config is the whole configuration file.
type Config struct {
	// Version of the file format. Required; must be 1.
	Version int `yaml:"version"`
	// Device describes this node.
	Device Device `yaml:"device"`
	// StateDir holds the state database, keystores and the admin socket.
	// Default /var/lib/edgefort. Created with mode 0700 if missing.
	StateDir string `yaml:"state_dir"`
	// Log configures the agent's log output (stderr).
	Log Log `yaml:"log"`
	// Admin configures the local admin API used by `edgefort status`.
	Admin Admin `yaml:"admin"`
	// Metrics configures the Prometheus endpoint.
	Metrics Metrics `yaml:"metrics"`
	// Supervisor configures how components are restarted and stopped.
	Supervisor Supervisor `yaml:"supervisor"`
	// Cloud configures the JWT-authenticated control-plane link.
	Cloud Cloud `yaml:"cloud"`
	// IoT configures the SigV4 MQTT event link to AWS IoT Core.
	IoT IoT `yaml:"iot"`
	// Updates configures the update channel to a Mender server.
	Updates Updates `yaml:"updates"`
	// Clients configures the private-network HTTPS server and the local
	// backends it proxies to.
	Clients Clients `yaml:"clients"`
	// Keystores configures references to keystores and truststores.
	Keystores Keystores `yaml:"keystores"`

	// file and lines place problems found after loading (say, a keystore
	// that does not exist) in the file, as Load does for its own.
	file  string
	lines map[string]int
}

// File is the name the configuration was loaded from.
func (c *Config) File() string { return c.file }

// Problem builds a problem about field, placed at the field's line (or its
// nearest parent's) in the file the configuration came from. Components use
// it for checks that need more than the file, so that their errors read like
// Load's.
func (c *Config) Problem(field, format string, args ...any) Problem {
	p := Problem{File: c.file, Field: field, Message: fmt.Sprintf(format, args...)}
	p.Line = lineOf(field, c.lines)
	return p
}

// Device identifies this node.
type Device struct {
	// ID is the node's identity towards the cloud. Optional: enrollment
	// assigns one; until then the host name is used.
	ID string `yaml:"id"`
	// DeviceType is the Mender device type that artifacts must be built
	// for. Required when updates are enabled.
	DeviceType string `yaml:"device_type"`
	// Hostnames are the names clients reach this node by on the private
	// network; the built-in certificate is issued for them. Default: the
	// host name and localhost.
	Hostnames []string `yaml:"hostnames"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// Admin configures the local admin API.
type Admin struct {
	// Socket is the unix socket path. Default <state_dir>/admin.sock.
	// Its mode is 0600, or 0666 when allow_uids or allow_gids is set (the
	// agent then checks every caller itself, see below).
	Socket string `yaml:"socket"`
	// AllowUIDs are user ids, besides root and the agent's own user, that
	// may use the admin API. The agent checks each caller's uid and gid
	// as the kernel reports them (SO_PEERCRED) and refuses, with a logged
	// warning, everyone else. Those users must also reach the socket, so
	// with either list set the socket must lie outside state_dir (which is
	// 0700), e.g. /run/edgefort/admin.sock, in a directory they can
	// search; the agent creates a missing one with mode 0755.
	AllowUIDs []int `yaml:"allow_uids"`
	// AllowGIDs are group ids whose members may use the admin API. Only
	// the caller's primary (effective) group counts: that is the one the
	// kernel reports, supplementary groups are not seen.
	AllowGIDs []int `yaml:"allow_gids"`
}

// AllowsOthers reports whether users besides root and the agent's own
// may use the admin API.
func (a Admin) AllowsOthers() bool { return len(a.AllowUIDs) > 0 || len(a.AllowGIDs) > 0 }

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Enabled turns the endpoint on. Default true.
	Enabled *bool `yaml:"enabled"`
	// Listen is the host:port to serve /metrics on. Default 127.0.0.1:9273.
	// Must be a loopback address unless AllowNonLoopback is set.
	Listen string `yaml:"listen"`
	// AllowNonLoopback permits a Listen address reachable from the network.
	AllowNonLoopback bool `yaml:"allow_non_loopback"`
}

// Supervisor configures component restarts and shutdown.
type Supervisor struct {
	// ShutdownTimeout bounds a graceful stop of all components. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// RestartInitial is the first delay before restarting a failed
	// component. Default 1s.
	RestartInitial time.Duration `yaml:"restart_initial"`
	// RestartMax caps the restart delay. Default 2m.
	RestartMax time.Duration `yaml:"restart_max"`
	// RestartResetAfter is how long a component must stay up for its next
	// failure to be treated as a first one again. Default 1m.
	RestartResetAfter time.Duration `yaml:"restart_reset_after"`
}

// Cloud configures the control-plane link; cloudclient owns it.
type Cloud = cloudclient.Config

// Authorization policies for when-unreachable; cloudclient owns them.
const (
	FailClosed = cloudclient.FailClosed
	ServeStale = cloudclient.ServeStale
)

// Authorization configures the decision cache; cloudclient owns it.
type Authorization = cloudclient.Authorization

// IoT credential sources; iot owns them.
const (
	CredentialsCloud  = iot.CredentialsCloud
	CredentialsAWS    = iot.CredentialsAWS
	CredentialsStatic = iot.CredentialsStatic
)

// IoT configures the event link; iot owns it.
type IoT = iot.Config

// IoTCredentials selects the AWS credentials for signing; iot owns it.
type IoTCredentials = iot.Credentials

// Updates configures the Mender update channel; updater/deploy owns it.
type Updates = deploy.Config

// Clients configures the private-network server; clientapi owns it.
type Clients = clientapi.Config

// VirtualHost is one inbound server; clientapi owns it.
type VirtualHost = clientapi.VirtualHost

// TargetEndpoint is one outbound backend; clientapi owns it.
type TargetEndpoint = clientapi.TargetEndpoint

// SSL is the TLS block; keystore owns it (it turns one into a tls.Config).
type SSL = keystore.SSL

// Keystores configures store references; keystore owns it.
type Keystores = keystore.Config

// IsEnabled reports b, or def when b is unset.
func IsEnabled(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}
