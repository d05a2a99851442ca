package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/internal/httpbody"
	"github.com/edgefort/edgefort/updater/artifact"
)

// devDeployPoll is how often `edgefort dev deploy` asks for statuses.
const devDeployPoll = 200 * time.Millisecond

// devDeployRecheck is how often it asks the agent to check again while
// the device has reported nothing (a check already under way when the
// deployment was created does not see it).
const devDeployRecheck = 5 * time.Second

// The single-file payload's control files, named as the module reads them.
var singleFileControl = []string{"dest_dir", "filename", "permissions"}

func newDevDeployCmd() *command {
	c := &command{
		name:  "deploy",
		args:  "FILE",
		short: "deploy a file to the running dev agent over the update channel",
		long: `Deploy FILE to the agent a running 'edgefort dev' serves, the way a fleet
is updated: build a single-file Artifact (device type ` + devDeviceType + `) that
installs FILE into --dest, upload it to the dev update server, deploy it to
every device, ask the agent to check now, and print each status the device
reports until the last one. --artifact deploys a prebuilt Artifact instead.

Artifact names are unique on the server, as on Mender: deploying a name
already uploaded deploys the uploaded Artifact, and a device that runs it
already reports already-installed.

Exits 0 when the deployment ends in success, 1 otherwise with the reason.
The running 'edgefort dev' is found through its configuration (--config,
$EDGEFORT_CONFIG), as its banner shows.`,
	}
	fs := c.fs()
	cfgPath := fs.String("config", configPath(), "configuration `FILE` of the running 'edgefort dev' (its banner names it)")
	dest := fs.String("dest", "", "`DIR` to install FILE into (default: <state dir>/"+devDeployedDir+")")
	name := fs.String("name", "", "Artifact `NAME` (default: FILE's base name and the Unix time)")
	prebuilt := fs.String("artifact", "", "deploy this Artifact `FILE` (.mender) instead of building one from FILE")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long (`DURATION`) to wait for the deployment to end")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if *prebuilt != "" {
			if len(args) != 0 || *dest != "" || *name != "" {
				return usageError{fmt.Sprintf("%s: --artifact takes no FILE, --dest or --name (the Artifact has them) (see '%s --help')", c.path(), c.path())}
			}
		} else if err := c.wantArgs(args, 1); err != nil {
			return err
		}
		if *timeout <= 0 {
			return usageError{fmt.Sprintf("%s: --timeout must be positive", c.path())}
		}
		d, err := openDevDeploy(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer d.http.CloseIdleConnections()
		var art string
		if *prebuilt != "" {
			art = *prebuilt
		} else {
			dir := *dest
			if dir == "" {
				dir = filepath.Join(d.cfg.StateDir, devDeployedDir)
			}
			if dir, err = filepath.Abs(dir); err != nil {
				return err
			}
			n := *name
			if n == "" {
				// Readable, and unique even for deploys in the same second
				// (the server refuses a second Artifact of the same name).
				var r [3]byte
				rand.Read(r[:])
				n = fmt.Sprintf("%s-%s-%x", filepath.Base(args[0]), time.Now().UTC().Format("20060102T150405"), r)
			}
			tmp, err := os.MkdirTemp("", "edgefort-deploy-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			art = filepath.Join(tmp, "deploy.mender")
			if err := writeSingleFileArtifact(art, args[0], dir, n, tmp); err != nil {
				return err
			}
			fmt.Fprintf(st.stdout, "built %s: installs %s into %s\n", n, filepath.Base(args[0]), dir)
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		return d.deploy(ctx, st, art, *timeout)
	}
	return c
}

// writeSingleFileArtifact writes to out an Artifact for the single-file
// update module that installs file into destDir, keeping its mode.
func writeSingleFileArtifact(out, file, destDir, name, tempDir string) error {
	src, err := artifact.FileSource(file)
	if err != nil {
		return err
	}
	if slices.Contains(singleFileControl, src.Name) {
		return fmt.Errorf("%s: the single-file module reserves the name %q; rename the file", file, src.Name)
	}
	if !artifact.ValidFileName(src.Name) {
		return fmt.Errorf("%s: %q cannot name a file in an Artifact; rename the file", file, src.Name)
	}
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	p := artifact.ModuleImage("single-file", name, artifact.ImageDefaults{})
	p.Files = []artifact.Source{
		src,
		bytesSource("dest_dir", destDir),
		bytesSource("filename", src.Name),
		bytesSource("permissions", fmt.Sprintf("%o", fi.Mode().Perm())),
	}
	spec := &artifact.Spec{
		Name:     name,
		Depends:  artifact.Depends{DeviceTypes: []string{devDeviceType}},
		Payloads: []artifact.PayloadSpec{p},
		TempDir:  tempDir,
	}
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("build artifact: %w", err)
	}
	if err := writeArtifactFile(out, spec); err != nil {
		return fmt.Errorf("build artifact: %w", err)
	}
	return nil
}

func bytesSource(name, content string) artifact.Source {
	return artifact.Source{Name: name, Open: func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(content)), nil
	}}
}

// devDeploy reaches a running `edgefort dev`: its agent through the admin
// socket, its update server through the management API.
type devDeploy struct {
	cfg    *config.Config
	admin  *adminclient.Client
	server devMenderInfo
	http   *http.Client
}

// openDevDeploy finds the running `edgefort dev` of the configuration at
// cfgPath and prepares a client for its update server: trusting the dev
// CA, with a short-lived client certificate from it (the server requires
// one on every connection).
func openDevDeploy(ctx context.Context, cfgPath string) (*devDeploy, error) {
	cfg, err := config.Load(cfgPath)
	if errors.Is(err, config.ErrNoConfig) {
		return nil, fmt.Errorf("no configuration at %s: start 'edgefort dev' and point --config or $%s at the configuration its banner names", cfgPath, config.EnvConfig)
	}
	if err != nil {
		return nil, err
	}
	d := &devDeploy{cfg: cfg, admin: adminClient(cfg.Admin.Socket)}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.admin.Ping(pctx); errors.Is(err, adminclient.ErrNotRunning) {
		return nil, fmt.Errorf("edgefort dev is not running for %s (no agent on %s): start it with 'edgefort dev'", cfgPath, cfg.Admin.Socket)
	} else if err != nil {
		return nil, err
	}
	infoPath := filepath.Join(cfg.StateDir, devCloudDir, devMenderFile)
	data, err := os.ReadFile(infoPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no dev update server runs for %s (%s is missing): 'edgefort dev deploy' works with the agent 'edgefort dev' runs, not 'edgefort run'", cfgPath, infoPath)
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &d.server); err != nil || d.server.ServerURL == "" || d.server.ManagementToken == "" {
		return nil, fmt.Errorf("%s: not a dev update server description (%v)", infoPath, err)
	}
	ca, err := loadDevCA(filepath.Join(cfg.StateDir, devCADir))
	if err != nil {
		return nil, fmt.Errorf("dev CA: %w", err)
	}
	key, leaf, err := ca.Issue("edgefort dev deploy", nil, time.Hour)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	d.http = &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    roots,
			Certificates: []tls.Certificate{{
				Certificate: [][]byte{leaf.Raw, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf,
			}},
		},
		DisableCompression: true,
	}}
	return d, nil
}

// errArtifactUploaded is the server's answer to an Artifact name it has.
var errArtifactUploaded = errors.New("artifact name already uploaded")

// deploy uploads the Artifact at path, deploys it to every device, makes
// the agent check, and follows the device's statuses to the last one.
func (d *devDeploy) deploy(ctx context.Context, st streams, path string, timeout time.Duration) error {
	name, err := d.upload(ctx, path)
	if errors.Is(err, errArtifactUploaded) {
		fmt.Fprintf(st.stdout, "%s is on the update server already (Artifact names are unique): deploying that one\n", name)
	} else if err != nil {
		return err
	}
	var dep struct {
		ID string `json:"id"`
	}
	if err := d.call(ctx, http.MethodPost, "deployments", map[string]any{"artifact_name": name}, &dep); err != nil {
		return fmt.Errorf("create deployment: %w", err)
	}
	fmt.Fprintf(st.stdout, "deployment %s: %s to every device\n", dep.ID, name)
	if err := d.admin.CheckUpdate(ctx); err != nil {
		return fmt.Errorf("ask the agent to check now: %w", err)
	}
	final, err := d.follow(ctx, st, dep.ID, timeout)
	if err != nil {
		return err
	}
	switch final {
	case "success":
		fmt.Fprintf(st.stdout, "%s: installed; 'edgefort update status' shows it\n", name)
		return nil
	case "already-installed":
		return fmt.Errorf("deployment of %s ended already-installed: the device runs that Artifact already", name)
	case "noartifact":
		return fmt.Errorf("deployment of %s ended noartifact: its device types do not include the device's (%s)", name, d.cfg.Device.DeviceType)
	case "failure":
		return fmt.Errorf("deployment of %s ended failure: %s", name, d.failureReason(ctx, name))
	}
	return fmt.Errorf("deployment of %s ended %s", name, final)
}

// upload sends the Artifact and returns its name. For a name the server
// has, it returns the name (read from the Artifact) and
// errArtifactUploaded.
func (d *devDeploy) upload(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h, err := artifact.NewReader(f, artifact.Options{AllAugments: true}).Header()
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	var out struct {
		Name string `json:"name"`
	}
	err = d.call(ctx, http.MethodPost, "artifacts", f, &out)
	var se *devServerError
	if errors.As(err, &se) && se.code == http.StatusConflict {
		return h.Name, errArtifactUploaded
	}
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", path, err)
	}
	return out.Name, nil
}

// follow prints each status the devices report for deployment id as it
// arrives and returns the final one. With one device (the dev agent) the
// statuses print bare; with more, after the device ID.
func (d *devDeploy) follow(ctx context.Context, st streams, id string, timeout time.Duration) (string, error) {
	seen := make(map[string]int)     // device ID → statuses printed
	final := make(map[string]string) // device ID → final status
	lastCheck := time.Now()
	last := "none yet"
	tick := time.NewTicker(devDeployPoll)
	defer tick.Stop()
	for {
		var sets []struct {
			DeviceID string
			Status   string
		}
		if err := d.call(ctx, http.MethodGet, "authsets", nil, &sets); err != nil {
			return "", d.followErr(ctx, err, timeout, last)
		}
		var devices []string
		for _, s := range sets {
			if s.Status == "accepted" && !slices.Contains(devices, s.DeviceID) {
				devices = append(devices, s.DeviceID)
			}
		}
		for _, dev := range devices {
			var statuses []string
			if err := d.call(ctx, http.MethodGet, "deployments/"+id+"/devices/"+dev+"/statuses", nil, &statuses); err != nil {
				return "", d.followErr(ctx, err, timeout, last)
			}
			for _, s := range statuses[min(seen[dev], len(statuses)):] {
				if len(devices) > 1 {
					fmt.Fprintf(st.stdout, "  %s %s\n", dev, s)
				} else {
					fmt.Fprintf(st.stdout, "  %s\n", s)
				}
				last = s
				if slices.Contains([]string{"success", "failure", "already-installed", "noartifact"}, s) {
					final[dev] = s
				}
			}
			seen[dev] = len(statuses)
		}
		if len(final) > 0 && len(final) == len(devices) {
			return worstStatus(final), nil
		}
		if allZero(seen) && time.Since(lastCheck) >= devDeployRecheck {
			d.admin.CheckUpdate(ctx) // best effort: the first request was made
			lastCheck = time.Now()
		}
		select {
		case <-ctx.Done():
			return "", d.followErr(ctx, ctx.Err(), timeout, last)
		case <-tick.C:
		}
	}
}

func (d *devDeploy) followErr(ctx context.Context, err error, timeout time.Duration, last string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("the deployment did not end within %s (last status: %s); see 'edgefort update status' and the log of 'edgefort dev'", timeout, last)
	}
	return fmt.Errorf("follow the deployment: %w", err)
}

func allZero(m map[string]int) bool {
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// worstStatus is success only when every device succeeded.
func worstStatus(final map[string]string) string {
	for _, s := range final {
		if s != "success" {
			return s
		}
	}
	return "success"
}

// failureReason asks the agent why its last deployment of name failed; the
// server's statuses carry no reason.
func (d *devDeploy) failureReason(ctx context.Context, name string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	for {
		us, err := d.admin.UpdateStatus(ctx)
		if err == nil && us.Poller != nil && us.Poller.LastResult != nil && us.Poller.LastResult.ArtifactName == name && us.Poller.LastResult.Reason != "" {
			return us.Poller.LastResult.Reason
		}
		select {
		case <-ctx.Done():
			return "the agent gave no reason; see the log of 'edgefort dev'"
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// devServerError is an error answer of the management API.
type devServerError struct {
	code       int
	msg, reqID string
}

func (e *devServerError) Error() string {
	s := fmt.Sprintf("update server: %d %s: %s", e.code, http.StatusText(e.code), e.msg)
	if e.reqID != "" {
		s += " (request " + e.reqID + ")"
	}
	return s
}

// call makes one management API call. body is an io.Reader sent as is, or
// a value sent as JSON; out, when not nil, receives the JSON answer.
func (d *devDeploy) call(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case io.Reader:
		r, ctype = b, "application/vnd.mender-artifact"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return err
		}
		r, ctype = bytes.NewReader(data), "application/json"
	}
	url := d.server.ServerURL + "/api/management/dev/" + path
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.server.ManagementToken)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("cannot reach the dev update server at %s (is 'edgefort dev' still running?): %w", d.server.ServerURL, err)
	}
	defer resp.Body.Close()
	data, err := httpbody.Read(resp, 1<<20, "update server reply")
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error     string `json:"error"`
			RequestID string `json:"request_id"`
		}
		json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &devServerError{code: resp.StatusCode, msg: e.Error, reqID: e.RequestID}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("update server: decode %s: %w", path, err)
	}
	return nil
}
