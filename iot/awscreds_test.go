package iot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const credsFile = `# written by aws configure
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = secretdefault

[ci]
AWS_ACCESS_KEY_ID=AKIDCI
aws_secret_access_key=secretci
aws_session_token = tokenci
s3 =
  max_concurrent_requests = 20

[procinfile]
credential_process = printf '{"Version":1,"AccessKeyId":"AKIDPROCFILE","SecretAccessKey":"secretprocfile"}'

; keys without a secret
[half]
aws_access_key_id = AKIDHALF
`

const configFile = `[default]
region = eu-west-1

[profile broken]
credential_process = exit 3

[profile proc]
credential_process = printf '{"Version":1,"AccessKeyId":"AKIDPROC","SecretAccessKey":"secretproc","SessionToken":"tokenproc"}'
`

// TestAWSChain covers each source of iot.credentials.source: aws: the
// environment, the shared credentials file by profile, a credential_process
// in the shared config file, and the errors a node's operator sees.
func TestAWSChain(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	conf := filepath.Join(dir, "config")
	bad := filepath.Join(dir, "bad")
	writeFile(t, creds, credsFile)
	writeFile(t, conf, configFile)
	writeFile(t, bad, "[default]\naws_access_key_id = AKID\nthis line has no equals sign\n")
	files := map[string]string{"AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_CONFIG_FILE": conf}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range files {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	type want struct{ ID, Secret, Token string }
	tests := []struct {
		name    string
		env     map[string]string
		want    want
		wantErr string // a substring of the error
	}{
		{name: "environment first", env: with(map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "secretenv", "AWS_SESSION_TOKEN": "tokenenv"}), want: want{"AKIDENV", "secretenv", "tokenenv"}},
		{name: "environment half set", env: with(map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV"}), wantErr: "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{name: "default profile", env: with(nil), want: want{"AKIDDEFAULT", "secretdefault", ""}},
		{name: "AWS_PROFILE, keys in any case, nested lines skipped", env: with(map[string]string{"AWS_PROFILE": "ci"}), want: want{"AKIDCI", "secretci", "tokenci"}},
		{name: "profile without a secret", env: with(map[string]string{"AWS_PROFILE": "half"}), wantErr: creds + ": profile half has no aws_secret_access_key"},
		{name: "unknown profile", env: with(map[string]string{"AWS_PROFILE": "nope"}), wantErr: creds + " has no profile nope"},
		{name: "credential_process in the config file", env: with(map[string]string{"AWS_PROFILE": "proc"}), want: want{"AKIDPROC", "secretproc", "tokenproc"}},
		{name: "credential_process in the credentials file", env: with(map[string]string{"AWS_PROFILE": "procinfile"}), want: want{"AKIDPROCFILE", "secretprocfile", ""}},
		{name: "credential_process failing", env: with(map[string]string{"AWS_PROFILE": "broken"}), wantErr: "aws credentials: credential_process: "},
		{name: "missing file", env: map[string]string{"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"), "AWS_CONFIG_FILE": conf}, wantErr: filepath.Join(dir, "none") + " does not exist"},
		{name: "home's files", env: map[string]string{"HOME": filepath.Join(dir, "home")}, wantErr: filepath.Join(dir, "home", ".aws", "credentials") + " does not exist"},
		{name: "bad file names the line", env: map[string]string{"AWS_SHARED_CREDENTIALS_FILE": bad, "AWS_CONFIG_FILE": conf}, wantErr: bad + ":3: expected key = value or [section]"},
		{name: "no home", env: map[string]string{}, wantErr: "neither AWS_SHARED_CREDENTIALS_FILE nor HOME is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain := newAWSChain(func(k string) string { return tt.env[k] })
			got, err := chain.Retrieve(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Retrieve() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Retrieve(): %v", err)
			}
			if diff := cmp.Diff(tt.want, want{got.AccessKeyID, got.SecretAccessKey, got.SessionToken}); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAWSChainRotation: keys rotated in the shared credentials file are
// the ones the next connection signs with.
func TestAWSChainRotation(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	env := map[string]string{"AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_CONFIG_FILE": filepath.Join(dir, "config")}
	chain := newAWSChain(func(k string) string { return env[k] })
	for i, key := range []string{"AKIDOLD", "AKIDNEW"} {
		writeFile(t, creds, "[default]\naws_access_key_id = "+key+"\naws_secret_access_key = s\n")
		// Same size, so the change must be seen by its time; set it
		// apart explicitly rather than wait for the clock.
		mtime := time.Unix(1_700_000_000+int64(i)*60, 0)
		if err := os.Chtimes(creds, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		got, err := chain.Retrieve(context.Background())
		if err != nil {
			t.Fatalf("Retrieve(): %v", err)
		}
		if got.AccessKeyID != key {
			t.Errorf("after writing %s: AccessKeyID = %s", key, got.AccessKeyID)
		}
	}
}

func TestParseINI(t *testing.T) {
	tests := []struct {
		in      string
		want    iniFile
		wantErr string
	}{
		{in: "[a]\nk = v = w\n[ b  c ]\n", want: iniFile{"a": {"k": "v = w"}, "b c": {}}},
		{in: "k = v\n", wantErr: `1: key "k" outside any section`},
		{in: "\n[a\n", wantErr: "2: a section header without its closing ]"},
		{in: "[]\n", wantErr: "1: an empty section name"},
		{in: "  x = y\n", wantErr: "1: an indented line outside any section"},
	}
	for _, tt := range tests {
		got, err := parseINI([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("parseINI(%q) error = %v, want %s", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseINI(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseINI(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
