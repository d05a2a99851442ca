package iot

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestNodeCredentials: each source gives the credentials it names, and
// source cloud without the control plane's provider is a problem of the
// field iot.credentials.source.
func TestNodeCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
	t.Setenv("AWS_SESSION_TOKEN", "token-from-env")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	cloud := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKIDCLOUD", SecretAccessKey: "cloud"}, nil
	})
	tests := []struct {
		name  string
		creds Credentials
		cloud aws.CredentialsProvider
		want  string // access key id; empty: want a FieldError
	}{
		{"aws chain", Credentials{Source: CredentialsAWS}, nil, "AKIDFROMENV"},
		{"static", Credentials{Source: CredentialsStatic, AccessKeyID: "AKIDSTATIC", SecretAccessKey: "s"}, nil, "AKIDSTATIC"},
		{"cloud", Credentials{Source: CredentialsCloud}, cloud, "AKIDCLOUD"},
		{"cloud without the control plane", Credentials{Source: CredentialsCloud}, nil, ""},
		{"unknown source", Credentials{Source: "vault"}, cloud, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := credentials(Config{Region: "eu-west-1", Credentials: tt.creds}, tt.cloud)
			if tt.want == "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != "iot.credentials.source" {
					t.Fatalf("credentials = %v, want a FieldError on iot.credentials.source", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := p.Retrieve(t.Context())
			if err != nil || c.AccessKeyID != tt.want {
				t.Errorf("Retrieve = %+v, %v; want access key %s", c, err, tt.want)
			}
		})
	}
}
