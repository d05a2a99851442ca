package cloudclient

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// CredentialsSource names credentials from the control plane.
const CredentialsSource = "edgefort-control-plane"

// CredentialsExpiryWindow is how long before their expiry cached IoT
// credentials are replaced.
const CredentialsExpiryWindow = 5 * time.Minute

// CredentialsProvider fetches temporary AWS credentials for the event link
// from the control plane on every Retrieve. Use NewIoTCredentials for a
// cached one.
type CredentialsProvider struct {
	Client *Client
}

// Retrieve fetches a new set of credentials.
func (p *CredentialsProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	cr, err := p.Client.IoTCredentials(ctx)
	if err != nil {
		return aws.Credentials{}, err
	}
	if cr.AccessKeyID == "" || cr.SecretAccessKey == "" || cr.Expiration.IsZero() {
		return aws.Credentials{}, fmt.Errorf("cloudclient: iot credentials: %w",
			&ResponseError{Status: 200, Message: "incomplete credentials"})
	}
	return aws.Credentials{
		AccessKeyID:     cr.AccessKeyID,
		SecretAccessKey: cr.SecretAccessKey,
		SessionToken:    cr.SessionToken,
		Source:          CredentialsSource,
		CanExpire:       true,
		Expires:         cr.Expiration,
	}, nil
}

// NewIoTCredentials returns the event link's credentials provider: c's
// IoT credentials, cached and replaced CredentialsExpiryWindow before they
// expire; concurrent retrievals share one fetch.
func NewIoTCredentials(c *Client) aws.CredentialsProvider {
	return aws.NewCredentialsCache(&CredentialsProvider{Client: c}, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = CredentialsExpiryWindow
	})
}

var (
	_ aws.CredentialsProvider = (*CredentialsProvider)(nil)
	_ AuthorizeClient         = (*Client)(nil)
	_ error                   = (*ResponseError)(nil)
)
