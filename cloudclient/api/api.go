// Package api holds the wire types and paths of the control plane API that
// cloudclient calls and devcloud serves. The contract itself is
// controlplane.openapi.yaml beside this file (embedded as OpenAPI); these
// types follow it field for field, and tests on both sides check requests
// and responses against its schemas.
package api

import (
	"encoding/json"
	"strings"
	"time"
)

// Paths, relative to the control plane's base URL.
const (
	PathEnroll         = "/v1/enroll"
	PathToken          = "/v1/oauth/token"
	PathAuthorize      = "/v1/authorize"
	PathAuthorizeBatch = "/v1/authorize/batch"
	PathIoTCredentials = "/v1/devices/{id}/iot-credentials"
	PathReports        = "/v1/devices/{id}/reports"
	PathJWKS           = "/v1/.well-known/jwks.json"
)

// DevicePath fills {id} in a device path. Device IDs are URL-safe by
// construction (see EnrollResponse.DeviceID).
func DevicePath(path, deviceID string) string {
	return strings.Replace(path, "{id}", deviceID, 1)
}

// EnrollRequest exchanges a one-time enrollment token and a CSR made on the
// node (whose private key never leaves it) for the node's identity.
type EnrollRequest struct {
	// Token is the one-time enrollment token an operator obtained from the
	// cloud.
	Token string `json:"token"`
	// CSR is a PEM "CERTIFICATE REQUEST" (PKCS #10) signed with the new
	// device key: ECDSA P-256 or RSA (2048 bits or more).
	CSR string `json:"csr"`
	// Hostname and AgentVersion describe the node, for the operator.
	Hostname     string `json:"hostname,omitempty"`
	AgentVersion string `json:"agent_version,omitempty"`
}

// EnrollResponse is the node's identity and where to find the cloud.
type EnrollResponse struct {
	// DeviceID names the node from now on: letters, digits, '-' and '_'.
	DeviceID string `json:"device_id"`
	// CertificateChain is PEM, the device certificate first, for the CSR's
	// key, with client-auth usage and DeviceID as its common name.
	CertificateChain string `json:"certificate_chain"`
	// CABundle is PEM: the CA certificates the node trusts for the cloud's
	// own servers.
	CABundle  string    `json:"ca_bundle"`
	Endpoints Endpoints `json:"endpoints"`
}

// Endpoints tell the node where its links go.
type Endpoints struct {
	// ControlPlaneURL is the base URL of this API for the node.
	ControlPlaneURL string `json:"control_plane_url"`
	// TokenURL is the token endpoint, the audience of assertions.
	TokenURL string `json:"token_url"`
	// UpdateServerURL is the Mender server; empty when none.
	UpdateServerURL string `json:"update_server_url,omitempty"`
	// IoT is the AWS IoT Core endpoint; nil when none.
	IoT *IoTEndpoint `json:"iot,omitempty"`
}

// IoTEndpoint is where the event link connects.
type IoTEndpoint struct {
	// Endpoint is the ATS data endpoint host name.
	Endpoint  string `json:"endpoint"`
	Region    string `json:"region"`
	ThingName string `json:"thing_name"`
}

// Token endpoint: an RFC 7523 JWT-bearer grant, form-encoded
// (grant_type=GrantTypeJWTBearer, assertion=<JWT>), answered with a
// TokenResponse or, on failure, an OAuthError (RFC 6749 §5.2).
//
// The assertion is a JWT with iss = sub = the device ID, aud = the token
// URL, exp at most AssertionMaxLifetime after iat, a unique jti, and kid
// naming the device key; signed ES256 or RS256 with the device key.
const (
	GrantTypeJWTBearer   = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	AssertionMaxLifetime = 5 * time.Minute
)

// TokenResponse carries the access token, a JWT the other calls present as
// "Authorization: Bearer".
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"` // "Bearer"
	ExpiresIn   int    `json:"expires_in"` // seconds
}

// OAuthError is the token endpoint's error body.
type OAuthError struct {
	Code        string `json:"error"` // invalid_grant, invalid_client, invalid_request, unsupported_grant_type
	Description string `json:"error_description,omitempty"`
}

// Error is the body of every other error answer.
type Error struct {
	Code    string `json:"error"` // one of the Code constants
	Message string `json:"message"`
}

// Error codes (Error.Code), one per HTTP status.
const (
	CodeBadRequest   = "bad_request"  // 400
	CodeUnauthorized = "unauthorized" // 401
	CodeForbidden    = "forbidden"    // 403
	CodeNotFound     = "not_found"    // 404
	CodeConflict     = "conflict"     // 409: enrolling a key that is already enrolled
	CodeTooLarge     = "too_large"    // 413
	CodeRateLimited  = "rate_limited" // 429, with Retry-After
	CodeInternal     = "internal"     // 500
	CodeUnavailable  = "unavailable"  // 503, with Retry-After
)

// User is the person (or service) a client request acts for, as the node
// authenticated it.
type User struct {
	ID string `json:"id"`
	// Directory is the user directory (identity provider) the ID belongs
	// to.
	Directory  string              `json:"directory"`
	Groups     []string            `json:"groups,omitempty"`
	Attributes map[string][]string `json:"attributes,omitempty"`
}

// Resource is what the action is on.
type Resource struct {
	// Type is "space" or "app".
	Type string `json:"type"`
	ID   string `json:"id"`
	// Space is the space an app belongs to; empty for a space.
	Space string `json:"space,omitempty"`
}

// AuthorizeRequest asks whether User may do Action on Resource.
type AuthorizeRequest struct {
	User     User     `json:"user"`
	Action   string   `json:"action"` // e.g. "app.read", "app.reload"
	Resource Resource `json:"resource"`
}

// Decision is the cloud's answer. TTLSeconds says how long it may be
// cached; 0 means not at all.
type Decision struct {
	Allow      bool   `json:"allow"`
	Reason     string `json:"reason"`
	TTLSeconds int    `json:"ttl_seconds"`
}

// BatchAuthorizeRequest asks several questions at once; the answer's
// Decisions are in the same order.
type BatchAuthorizeRequest struct {
	Checks []AuthorizeRequest `json:"checks"`
}

// BatchAuthorizeResponse answers a BatchAuthorizeRequest.
type BatchAuthorizeResponse struct {
	Decisions []Decision `json:"decisions"`
}

// IoTCredentials are temporary AWS credentials for the event link.
type IoTCredentials struct {
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token"`
	Expiration      time.Time `json:"expiration"`
}

// Report is one report or event from the node. IdempotencyKey makes
// redelivery safe: the server records each key once.
type Report struct {
	IdempotencyKey string `json:"idempotency_key"`
	// Stream orders reports: within a stream they are sent in order.
	Stream string          `json:"stream"`
	Type   string          `json:"type"`
	Time   time.Time       `json:"time"`
	Body   json.RawMessage `json:"body,omitempty"`
}

// ReportsRequest is a batch of reports.
type ReportsRequest struct {
	Reports []Report `json:"reports"`
}

// ReportsResponse acknowledges per key. A key in Acknowledged is recorded
// (now or earlier: a duplicate is acknowledged again); a key in Rejected
// will never be accepted (the reason says why) and must not be resent.
// Keys in neither were not processed and may be resent.
type ReportsResponse struct {
	Acknowledged []string    `json:"acknowledged"`
	Rejected     []Rejection `json:"rejected,omitempty"`
}

// Rejection is a report the server refuses for good.
type Rejection struct {
	IdempotencyKey string `json:"idempotency_key"`
	Reason         string `json:"reason"`
}
