package cloudclient

import (
	"fmt"
	"time"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/store"
)

// Where an enrollment puts the node's identity. The references are what
// the links use; each enrollment makes fresh stores and repoints them, so
// a re-enrollment takes effect at the next handshake, like any rotation.
const (
	RefDeviceTLS  = "device-tls"  // keystore with the device key and certificate
	RefCloudTrust = "cloud-trust" // truststore with the cloud's CA bundle
	DeviceAlias   = "device"

	enrollmentBucket = "cloud"
	enrollmentKey    = "enrollment"
)

// Enrollment is the node's identity from the control plane, kept in the
// state store (never in the operator's configuration file).
type Enrollment struct {
	DeviceID  string        `json:"device_id"`
	Endpoints api.Endpoints `json:"endpoints"`
	// Keystore and Truststore name the stores made for this enrollment;
	// RefDeviceTLS and RefCloudTrust point at them.
	Keystore   string    `json:"keystore"`
	Truststore string    `json:"truststore"`
	KeyType    string    `json:"key_type"`
	Enrolled   time.Time `json:"enrolled"`
}

// LoadEnrollment reads the enrollment from an open store; nil when the
// node is not enrolled.
func LoadEnrollment(db *store.DB) (*Enrollment, error) {
	e, found, err := store.Get[Enrollment](db.Bucket(enrollmentBucket), enrollmentKey)
	if err != nil {
		return nil, fmt.Errorf("read the enrollment: %w", err)
	}
	if !found {
		return nil, nil
	}
	return &e, nil
}

// SaveEnrollment records the enrollment; its presence says the
// enrollment is complete, so it is written after the stores it names.
func SaveEnrollment(db *store.DB, e *Enrollment) error {
	return db.Bucket(enrollmentBucket).Put(enrollmentKey, e)
}
