package iot

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"
)

// maxAWSFile bounds what is read of a shared credentials or config file;
// real ones are a few hundred bytes per profile.
const maxAWSFile = 1 << 20

// awsChain is the credentials of source aws, a small chain of our own
// rather than the SDK's standard one (aws-sdk-go-v2/config, with SSO, STS,
// web identity and the EC2/ECS metadata services): an edge node has none
// of those, and the SDK's chain cost 2.2 MiB of binary and as much idle
// memory. In order:
//  1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the
//     optional AWS_SESSION_TOKEN;
//  2. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
//     ~/.aws/credentials), profile AWS_PROFILE or default: its
//     aws_access_key_id, aws_secret_access_key and aws_session_token, or
//     its credential_process;
//  3. the credential_process of that profile in the shared config file
//     (AWS_CONFIG_FILE, else ~/.aws/config; section [profile NAME], or
//     [default]).
//
// It is asked on every connection attempt. The files are read again when
// they change, so rotated keys are picked up on the next connection; a
// credential_process's answer is kept until it expires.
type awsChain struct {
	getenv func(string) string

	mu    sync.Mutex
	files map[string]*iniCache
	proc  string                // the command proc runs
	procs *aws.CredentialsCache // caches the process's answer until it expires
}

func newAWSChain(getenv func(string) string) *awsChain {
	return &awsChain{getenv: getenv, files: make(map[string]*iniCache)}
}

// Retrieve implements aws.CredentialsProvider.
func (c *awsChain) Retrieve(ctx context.Context) (aws.Credentials, error) {
	id, secret := c.getenv("AWS_ACCESS_KEY_ID"), c.getenv("AWS_SECRET_ACCESS_KEY")
	switch {
	case id != "" && secret != "":
		return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: c.getenv("AWS_SESSION_TOKEN"), Source: "EnvConfigCredentials"}, nil
	case id != "" || secret != "":
		return aws.Credentials{}, errors.New("aws credentials: the environment sets only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	profile := cmp.Or(c.getenv("AWS_PROFILE"), "default")
	credsPath, err := c.path("AWS_SHARED_CREDENTIALS_FILE", "credentials")
	if err != nil {
		return aws.Credentials{}, err
	}
	credsFile, credsErr := c.read(credsPath)
	if credsErr != nil && !errors.Is(credsErr, os.ErrNotExist) {
		return aws.Credentials{}, credsErr
	}
	if sec, ok := credsFile[profile]; ok {
		return c.fromSection(ctx, sec, credsPath, profile)
	}
	confPath, err := c.path("AWS_CONFIG_FILE", "config")
	if err != nil {
		return aws.Credentials{}, err
	}
	confFile, confErr := c.read(confPath)
	if confErr != nil && !errors.Is(confErr, os.ErrNotExist) {
		return aws.Credentials{}, confErr
	}
	name := "profile " + profile
	if profile == "default" {
		if _, ok := confFile[name]; !ok {
			name = "default"
		}
	}
	if sec, ok := confFile[name]; ok && sec["credential_process"] != "" {
		return c.process(ctx, sec["credential_process"])
	}
	if credsErr != nil {
		return aws.Credentials{}, fmt.Errorf("aws credentials: AWS_ACCESS_KEY_ID is not set and %s does not exist (nor a credential_process for profile %s in %s)", credsPath, profile, confPath)
	}
	return aws.Credentials{}, fmt.Errorf("aws credentials: AWS_ACCESS_KEY_ID is not set and %s has no profile %s (nor %s a credential_process for it)", credsPath, profile, confPath)
}

// fromSection takes a profile of the shared credentials file: keys, or a
// credential_process.
func (c *awsChain) fromSection(ctx context.Context, sec iniSection, path, profile string) (aws.Credentials, error) {
	id, secret := sec["aws_access_key_id"], sec["aws_secret_access_key"]
	if id == "" && secret == "" {
		if p := sec["credential_process"]; p != "" {
			return c.process(ctx, p)
		}
	}
	for _, k := range []struct {
		name string
		v    string
	}{{"aws_access_key_id", id}, {"aws_secret_access_key", secret}} {
		if k.v == "" {
			return aws.Credentials{}, fmt.Errorf("aws credentials: %s: profile %s has no %s", path, profile, k.name)
		}
	}
	return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: sec["aws_session_token"], Source: "SharedConfigCredentials: " + path}, nil
}

// process runs a credential_process (through sh -c, bounded to a minute,
// by the SDK's processcreds), keeping its answer until it expires.
func (c *awsChain) process(ctx context.Context, command string) (aws.Credentials, error) {
	c.mu.Lock()
	if c.procs == nil || c.proc != command {
		c.proc, c.procs = command, aws.NewCredentialsCache(processcreds.NewProvider(command))
	}
	cache := c.procs
	c.mu.Unlock()
	creds, err := cache.Retrieve(ctx)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("aws credentials: credential_process: %w", err)
	}
	return creds, nil
}

// path is the file an environment variable names, else ~/.aws/NAME.
func (c *awsChain) path(env, name string) (string, error) {
	if p := c.getenv(env); p != "" {
		return p, nil
	}
	home := c.getenv("HOME")
	if home == "" {
		return "", fmt.Errorf("aws credentials: neither %s nor HOME is set", env)
	}
	return filepath.Join(home, ".aws", name), nil
}

// iniCache is a parsed file and what it was parsed from.
type iniCache struct {
	size    int64
	modTime time.Time
	file    iniFile
}

// read returns the parsed file, parsing it again only when it changed.
func (c *awsChain) read(path string) (iniFile, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("aws credentials: %w", err)
	}
	c.mu.Lock()
	cached := c.files[path]
	c.mu.Unlock()
	if cached != nil && cached.size == fi.Size() && cached.modTime.Equal(fi.ModTime()) {
		return cached.file, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("aws credentials: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxAWSFile+1))
	if err != nil {
		return nil, fmt.Errorf("aws credentials: read %s: %w", path, err)
	}
	if len(data) > maxAWSFile {
		return nil, fmt.Errorf("aws credentials: %s is larger than %d bytes", path, maxAWSFile)
	}
	parsed, err := parseINI(data)
	if err != nil {
		return nil, fmt.Errorf("aws credentials: %s:%w", path, err)
	}
	c.mu.Lock()
	c.files[path] = &iniCache{size: fi.Size(), modTime: fi.ModTime(), file: parsed}
	c.mu.Unlock()
	return parsed, nil
}

// iniFile is a shared AWS file: sections of keys. Keys are lower-cased
// as the AWS tools read them; values are trimmed.
type (
	iniFile    map[string]iniSection
	iniSection map[string]string
)

// parseINI reads the subset of INI the AWS tools write: [section]
// headers, key = value lines, # and ; comment lines, blank lines.
// Continuation lines (nested s3 settings) are kept out of the way: an
// indented line belongs to the key above and is skipped. An error starts
// with the line number.
func parseINI(data []byte) (iniFile, error) {
	out := iniFile{}
	var sec iniSection
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxAWSFile)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%d: a section header without its closing ]", n)
			}
			name := strings.Join(strings.Fields(line[1:len(line)-1]), " ")
			if name == "" {
				return nil, fmt.Errorf("%d: an empty section name", n)
			}
			if sec = out[name]; sec == nil {
				sec = iniSection{}
				out[name] = sec
			}
		case raw[0] == ' ' || raw[0] == '\t':
			if sec == nil {
				return nil, fmt.Errorf("%d: an indented line outside any section", n)
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("%d: expected key = value or [section]", n)
			}
			if sec == nil {
				return nil, fmt.Errorf("%d: key %q outside any section", n, strings.TrimSpace(k))
			}
			sec[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf(" %w", err)
	}
	return out, nil
}
