package iot

import (
	"time"

	"github.com/edgefort/edgefort/keystore"
)

// Credential sources of Config.Credentials.Source.
const (
	CredentialsCloud  = "cloud"
	CredentialsAWS    = "aws"
	CredentialsStatic = "static"
)

// Config is the iot section of the agent's configuration file: the event
// link, its events, jobs and shadow. The agent's config package composes
// it, applies its defaults and validates it with FILE:LINE messages.
type Config struct {
	// Enabled turns the link on. Default false.
	Enabled bool `yaml:"enabled"`
	// Endpoint is the account's ATS data endpoint, host[:port], e.g.
	// abc123-ats.iot.eu-west-1.amazonaws.com. Required when enabled.
	Endpoint string `yaml:"endpoint"`
	// Region is the AWS region the signature is made for. Required when
	// enabled.
	Region string `yaml:"region"`
	// ThingName is the MQTT client id and thing name. Default device.id.
	ThingName string `yaml:"thing_name"`
	// EventsTopic carries cloud events. Default edgefort/<thing_name>/events.
	EventsTopic string `yaml:"events_topic"`
	// KeepAlive is the MQTT keep-alive, 30s to 20m as AWS IoT allows.
	// Default 5m (see iot.DefaultKeepAlive): lower it behind a NAT or
	// firewall that drops idle connections sooner, or to notice a dead
	// connection sooner.
	KeepAlive time.Duration `yaml:"keep_alive"`
	// ReconnectSpread is the window over which a node's reconnect is
	// spread once two quick retries (under 1s, then under 2s) failed: a
	// fleet of N nodes that lost the broker together comes back at about
	// N/reconnect_spread per second. Default 40s (or reconnect_max if
	// less).
	ReconnectSpread time.Duration `yaml:"reconnect_spread"`
	// ReconnectMax caps the reconnect delay. Default 2m.
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// Credentials says where the AWS credentials come from.
	Credentials Credentials `yaml:"credentials"`
	// SSL is the TLS block for the connection (truststore; Amazon's roots
	// by default).
	SSL keystore.SSL `yaml:"ssl"`
	// WebhookTarget names the clients.target_endpoints entry that cloud
	// "webhook" events are POSTed to (e.g. the local engine's reload API).
	// Empty: webhook events are rejected as unknown.
	WebhookTarget string `yaml:"webhook_target"`
}

// Credentials selects the AWS credentials for signing.
type Credentials struct {
	// Source is cloud (temporary credentials from the control plane), aws
	// or static. Default cloud. aws is the environment
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), then
	// the shared credentials file (AWS_SHARED_CREDENTIALS_FILE or
	// ~/.aws/credentials; profile AWS_PROFILE or default), then a
	// credential_process in the shared config file; not the SDK's full
	// chain (SSO, web identity, assume-role, EC2/ECS metadata): see
	// awsChain.
	Source string `yaml:"source"`
	// AccessKeyID, SecretAccessKey and SessionToken are used with static.
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`
}
