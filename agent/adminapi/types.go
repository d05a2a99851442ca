package adminapi

import (
	"encoding/json"
	"time"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/keystore"
)

// Status is what GET /v1/status answers and `edgefort status` prints.
type Status struct {
	Version    string      `json:"version"`
	Commit     string      `json:"commit"`
	PID        int         `json:"pid"`
	Started    time.Time   `json:"started"`
	StateDir   string      `json:"state_dir"`
	MetricsURL string      `json:"metrics_url,omitempty"`
	Ready      bool        `json:"ready"`
	Components []Component `json:"components"`
	// CertificateWarnings name certificates that have expired or expire
	// within 30 days, as "store/alias: what".
	CertificateWarnings []string `json:"certificate_warnings,omitempty"`
	// VirtualHosts are the client-facing base URLs by virtual host name.
	VirtualHosts map[string]string `json:"virtual_hosts,omitempty"`
	// AuthAPI is the authentication API's base URL (https://host:port),
	// when clients.auth_api is on and bound.
	AuthAPI string `json:"auth_api,omitempty"`
	// Updates is the update state, when device.device_type is set.
	Updates *UpdateStatus `json:"updates,omitempty"`
	// Cloud is the control plane link, when enabled.
	Cloud *CloudStatus `json:"cloud,omitempty"`
	// IoT is the event link, when enabled.
	IoT *EventLink `json:"iot,omitempty"`
}

// Component is one supervised component.
type Component struct {
	Name        string    `json:"name"`
	State       string    `json:"state"` // starting, running, backoff, stopped
	Since       time.Time `json:"since"` // when it entered State
	Restarts    int       `json:"restarts"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	NextStart   time.Time `json:"next_start,omitzero"` // set while backing off
}

// EventLink is the state of the MQTT event link.
type EventLink struct {
	State       string    `json:"state"`
	Since       time.Time `json:"since"`      // when it entered State
	Reconnects  int       `json:"reconnects"` // attempts after the first one
	Throttled   int       `json:"throttled"`  // attempts the service refused for its connect rate limits
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	MessagesIn  uint64    `json:"messages_in"`
	MessagesOut uint64    `json:"messages_out"`
}

// UpdateStatus is what GET /v1/update/status answers and `edgefort
// update status` prints.
type UpdateStatus struct {
	// Channel is true when the update channel to the server is enabled.
	Channel       bool              `json:"channel"`
	ServerURL     string            `json:"server_url,omitempty"`
	ArtifactName  string            `json:"artifact_name"`
	ArtifactGroup string            `json:"artifact_group,omitempty"`
	Provides      map[string]string `json:"provides,omitempty"`
	InFlight      *InFlightUpdate   `json:"in_flight,omitempty"`
	Poller        *PollerStatus     `json:"poller,omitempty"`
}

// InFlightUpdate is the deployment in progress.
type InFlightUpdate struct {
	DeploymentID string    `json:"deployment_id,omitempty"`
	ArtifactName string    `json:"artifact_name,omitempty"`
	Step         string    `json:"step"`
	Outcome      string    `json:"outcome,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	Started      time.Time `json:"started"`
}

// PollerStatus is the update channel's poller.
type PollerStatus struct {
	LastCheck     time.Time `json:"last_check,omitzero"`
	LastCheckErr  string    `json:"last_check_error,omitempty"`
	NextCheck     time.Time `json:"next_check,omitzero"`
	LastInventory time.Time `json:"last_inventory,omitzero"`
	// LastResult is the outcome of the last deployment this process ran.
	LastResult *UpdateResult `json:"last_result,omitempty"`
	// Deploying names the Artifact being installed now.
	Deploying string `json:"deploying,omitempty"`
	// PollInterval is the interval in force, e.g. "30m0s".
	PollInterval string `json:"poll_interval"`
}

// OutcomeRestarting is the Outcome of an install, commit or rollback
// that goes on after the agent restarts; follow it with GET
// /v1/update/status.
const OutcomeRestarting = "restarting"

// UpdateResult says how an install, commit or rollback ended.
type UpdateResult struct {
	ArtifactName string `json:"artifact_name"`
	// Outcome is a deploy.Outcome, or OutcomeRestarting.
	Outcome string `json:"outcome"`
	// Reason is why it failed, empty on success.
	Reason string `json:"reason,omitempty"`
	// RolledBack: the Artifact was installed and then rolled back.
	RolledBack bool `json:"rolled_back,omitempty"`
	// Inconsistent: a rollback failed or was impossible.
	Inconsistent bool `json:"inconsistent,omitempty"`
}

// CloudStatus is what GET /v1/cloud/status answers.
type CloudStatus struct {
	DeviceID        string        `json:"device_id"`
	ControlPlaneURL string        `json:"control_plane_url"`
	Endpoints       api.Endpoints `json:"endpoints"`
	Enrolled        time.Time     `json:"enrolled"`
	OutboxQueued    int           `json:"outbox_queued"`
}

// Decision is an authorization decision and where it came from.
type Decision struct {
	Allow      bool   `json:"allow"`
	Reason     string `json:"reason"`
	TTLSeconds int    `json:"ttl_seconds"`
	// Source is cloud, cache, stale or unreachable.
	Source string `json:"source"`
}

// AuthorizeReply is what POST /v1/cloud/authorize answers.
type AuthorizeReply struct {
	Decision Decision `json:"decision"`
	// Error is why the control plane could not be asked, when the
	// decision (then a deny or a stale answer) stands without it.
	Error string `json:"error,omitempty"`
}

// ReportRequest is the body of POST /v1/cloud/report.
type ReportRequest struct {
	Stream string          `json:"stream"`
	Type   string          `json:"type"`
	Body   json.RawMessage `json:"body,omitempty"`
	High   bool            `json:"high,omitempty"`
}

// ReportReply is what POST /v1/cloud/report answers.
type ReportReply struct {
	IdempotencyKey string `json:"idempotency_key"`
}

// CheckReply is what POST /v1/update/check answers.
type CheckReply struct {
	Status string `json:"status"`
	// HeldUntil is when the check will run when the update server's last
	// answer was a 429 whose Retry-After has not ended; zero: at once.
	HeldUntil time.Time `json:"held_until,omitzero"`
}

// ReloadReply is what POST /v1/clients/reload answers.
type ReloadReply struct {
	Status string `json:"status"`
}

// StoreList is what GET /v1/stores answers.
type StoreList struct {
	Stores []keystore.StoreInfo `json:"stores"`
}

// RefList is what GET /v1/refs answers: store names by reference name.
type RefList struct {
	Refs map[string]string `json:"refs"`
}

// KeyPairList is what GET /v1/keypairs answers.
type KeyPairList struct {
	KeyPairs []keystore.KeyPairInfo `json:"key_pairs"`
}

// Change is what an operation that changes something answers.
type Change struct {
	// Message says what changed, for the operator.
	Message  string   `json:"message"`
	Warnings []string `json:"warnings,omitempty"`
	// Aliases are the aliases an import wrote.
	Aliases []string `json:"aliases,omitempty"`
	// KeyPair is the key pair generated or verified.
	KeyPair *keystore.KeyPairInfo `json:"key_pair,omitempty"`
}

// Document is a PEM or JSON document to print as is.
type Document struct {
	Data string `json:"data"`
}

// CreateStoreRequest is the body of POST /v1/stores.
type CreateStoreRequest struct {
	Name string        `json:"name"`
	Kind keystore.Kind `json:"kind"`
}

// ImportRequest is the body of PUT /v1/stores/{store}/entries/{alias}:
// a key and chain as PEM, or a PKCS#12 bundle, for a keystore;
// certificates as PEM for a truststore.
type ImportRequest struct {
	// Kind, when set, refuses a store of the other kind.
	Kind       keystore.Kind `json:"kind,omitempty"`
	KeyPEM     []byte        `json:"key_pem,omitempty"`
	CertPEM    []byte        `json:"cert_pem,omitempty"`
	Passphrase []byte        `json:"passphrase,omitempty"`
	PKCS12     []byte        `json:"pkcs12,omitempty"`
	Password   string        `json:"password,omitempty"`
	// Split imports a truststore's certificates one alias each.
	Split bool `json:"split,omitempty"`
}

// SetRefRequest is the body of PUT /v1/refs/{name}.
type SetRefRequest struct {
	Store string `json:"store"`
}

// GenerateKeyPairRequest is the body of POST /v1/keypairs.
type GenerateKeyPairRequest struct {
	Bits int `json:"bits"`
}

// VerifyKeyPairRequest is the body of POST /v1/keypairs/verify.
type VerifyKeyPairRequest struct {
	Token       []byte `json:"token"`
	KeepPending bool   `json:"keep_pending,omitempty"`
}
