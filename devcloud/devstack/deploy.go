package devstack

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/updater/artifact"
)

// deployPoll is how often Deploy asks for statuses.
const deployPoll = 200 * time.Millisecond

// deployRecheck is how often it asks the agent to check again while the
// device has reported nothing (a check already under way when the
// deployment was created does not see it).
const deployRecheck = 5 * time.Second

// The single-file payload's control files, named as the module reads them.
var singleFileControl = []string{"dest_dir", "filename", "permissions"}

// ArtifactNameHelp describes DefaultArtifactName, for --help.
const ArtifactNameHelp = "FILE's base name, the UTC time and 6 random hex digits, e.g. notes.txt-20260102T150405-a1b2c3"

// DefaultArtifactName names an Artifact built from file at now: readable,
// and unique even for deploys in the same second (the server refuses a
// second Artifact of the same name).
func DefaultArtifactName(file string, now time.Time) string {
	var r [3]byte
	rand.Read(r[:])
	return fmt.Sprintf("%s-%s-%x", filepath.Base(file), now.UTC().Format("20060102T150405"), r)
}

// WriteSingleFileArtifact writes to out an Artifact for the single-file
// update module that installs file into destDir, keeping its mode.
func WriteSingleFileArtifact(out, file, destDir, name, tempDir string) error {
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
		Depends:  artifact.Depends{DeviceTypes: []string{DeviceType}},
		Payloads: []artifact.PayloadSpec{p},
		TempDir:  tempDir,
	}
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("build artifact: %w", err)
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = artifact.Write(f, spec)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return fmt.Errorf("build artifact: %w", err)
	}
	return nil
}

func bytesSource(name, content string) artifact.Source {
	return artifact.Source{Name: name, Open: func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(content)), nil
	}}
}

// errArtifactUploaded is the server's answer to an Artifact name it has.
var errArtifactUploaded = errors.New("artifact name already uploaded")

// Deploy uploads the Artifact at path, deploys it to every device, makes
// the agent check, and prints to w each status the devices report, to the
// last one. It returns nil only when the deployment ends in success. ctx
// bounds the whole; its deadline is named in the error when it passes.
func (c *Client) Deploy(ctx context.Context, w io.Writer, path string) error {
	name, err := c.upload(ctx, path)
	if errors.Is(err, errArtifactUploaded) {
		fmt.Fprintf(w, "%s is on the update server already (Artifact names are unique): deploying that one\n", name)
	} else if err != nil {
		return err
	}
	var dep struct {
		ID string `json:"id"`
	}
	if err := c.menderCall(ctx, http.MethodPost, "deployments", map[string]any{"artifact_name": name}, &dep); err != nil {
		return fmt.Errorf("create deployment: %w", err)
	}
	fmt.Fprintf(w, "deployment %s: %s to every device\n", dep.ID, name)
	if _, err := c.admin.CheckUpdate(ctx); err != nil {
		return fmt.Errorf("ask the agent to check now: %w", err)
	}
	final, err := c.follow(ctx, w, dep.ID)
	if err != nil {
		return err
	}
	switch final {
	case "success":
		fmt.Fprintf(w, "%s: installed; 'edgefort update status' shows it\n", name)
		c.printInventory(ctx, w, name)
		return nil
	case "already-installed":
		return fmt.Errorf("deployment of %s ended already-installed: the device runs that Artifact already", name)
	case "noartifact":
		return fmt.Errorf("deployment of %s ended noartifact: its device types do not include the device's (%s)", name, c.Config.Device.DeviceType)
	case "failure":
		return fmt.Errorf("deployment of %s ended failure: %s", name, c.failureReason(ctx, name))
	}
	return fmt.Errorf("deployment of %s ended %s", name, final)
}

// inventoryWait bounds how long Deploy waits for the inventory to name a
// new Artifact (the agent sends it right after the deployment).
const inventoryWait = 10 * time.Second

// printInventory prints what the update server's inventory says the
// devices run, once it names the Artifact name (or inventoryWait passed):
// artifact_name and the software versions (rootfs-image.*), such as
// rootfs-image.version for a root filesystem. Best effort: the deployment
// has succeeded whatever it finds.
func (c *Client) printInventory(ctx context.Context, w io.Writer, name string) {
	ctx, cancel := context.WithTimeout(ctx, inventoryWait)
	defer cancel()
	devices, err := c.acceptedDevices(ctx)
	if err != nil {
		return
	}
	for _, dev := range devices {
		var inv map[string]devcloud.InventoryAttribute
		poll(ctx, deployPoll, func() (bool, error) {
			inv = nil
			if err := c.menderCall(ctx, http.MethodGet, "devices/"+dev+"/inventory", nil, &inv); err != nil {
				return false, nil
			}
			return inventoryString(inv["artifact_name"]) == name, nil
		})
		for _, k := range slices.Sorted(maps.Keys(inv)) {
			if k != "artifact_name" && !strings.HasPrefix(k, "rootfs-image.") {
				continue
			}
			prefix := "  inventory:"
			if len(devices) > 1 {
				prefix = "  " + dev + " inventory:"
			}
			fmt.Fprintf(w, "%s %s=%s\n", prefix, k, inventoryString(inv[k]))
		}
	}
}

// inventoryString is a string attribute's value; JSON text otherwise.
func inventoryString(a devcloud.InventoryAttribute) string {
	var s string
	if json.Unmarshal(a.Value, &s) == nil {
		return s
	}
	return string(a.Value)
}

func (c *Client) menderCall(ctx context.Context, method, path string, body, out any) error {
	return call(ctx, c.mender, "update server", method, c.Info.UpdateServer.URL+"/api/management/dev/"+path, c.Info.UpdateServer.ManagementToken, body, out, 1<<20)
}

// upload sends the Artifact and returns its name. For a name the server
// has, it returns the name (read from the Artifact) and
// errArtifactUploaded.
func (c *Client) upload(ctx context.Context, path string) (string, error) {
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
	err = c.menderCall(ctx, http.MethodPost, "artifacts", f, &out)
	var se *ServerError
	if errors.As(err, &se) && se.Code == http.StatusConflict {
		return h.Name, errArtifactUploaded
	}
	if err != nil {
		return "", fmt.Errorf("upload %s: %w", path, err)
	}
	return out.Name, nil
}

// finalStatuses end a device's deployment.
var finalStatuses = []string{"success", "failure", "already-installed", "noartifact"}

// follow prints each status the devices report for deployment id as it
// arrives and returns the final one. With one device (the dev agent) the
// statuses print bare; with more, after the device ID.
func (c *Client) follow(ctx context.Context, w io.Writer, id string) (string, error) {
	seen := make(map[string]int)     // device ID → statuses printed
	final := make(map[string]string) // device ID → final status
	lastCheck := time.Now()
	last := "none yet"
	err := poll(ctx, deployPoll, func() (bool, error) {
		devices, err := c.acceptedDevices(ctx)
		if err != nil {
			return false, err
		}
		for _, dev := range devices {
			var statuses []string
			if err := c.menderCall(ctx, http.MethodGet, "deployments/"+id+"/devices/"+dev+"/statuses", nil, &statuses); err != nil {
				return false, err
			}
			for _, s := range statuses[min(seen[dev], len(statuses)):] {
				if len(devices) > 1 {
					fmt.Fprintf(w, "  %s %s\n", dev, s)
				} else {
					fmt.Fprintf(w, "  %s\n", s)
				}
				last = s
				if slices.Contains(finalStatuses, s) {
					final[dev] = s
				}
			}
			seen[dev] = len(statuses)
		}
		if len(final) > 0 && len(final) == len(devices) {
			return true, nil
		}
		if allZero(seen) && time.Since(lastCheck) >= deployRecheck {
			c.admin.CheckUpdate(ctx) // best effort: the first request was made
			lastCheck = time.Now()
		}
		return false, nil
	})
	if err != nil && ctx.Err() != nil {
		return "", fmt.Errorf("the deployment did not end in time%s (last status: %s); see 'edgefort update status' and the log of edgefort-dev", deadlineNote(ctx), last)
	}
	if err != nil {
		return "", fmt.Errorf("follow the deployment: %w", err)
	}
	return worstStatus(final), nil
}

func deadlineNote(ctx context.Context) string {
	if d, ok := ctx.Deadline(); ok && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return " (deadline " + d.Format(time.TimeOnly) + ")"
	}
	return ""
}

func (c *Client) acceptedDevices(ctx context.Context) ([]string, error) {
	var sets []struct {
		DeviceID string
		Status   string
	}
	if err := c.menderCall(ctx, http.MethodGet, "authsets", nil, &sets); err != nil {
		return nil, err
	}
	var devices []string
	for _, s := range sets {
		if s.Status == "accepted" && !slices.Contains(devices, s.DeviceID) {
			devices = append(devices, s.DeviceID)
		}
	}
	return devices, nil
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
func (c *Client) failureReason(ctx context.Context, name string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	var reason string
	poll(ctx, 100*time.Millisecond, func() (bool, error) {
		us, err := c.admin.UpdateStatus(ctx)
		if err == nil && us.Poller != nil && us.Poller.LastResult != nil && us.Poller.LastResult.ArtifactName == name {
			reason = us.Poller.LastResult.Reason
		}
		return reason != "", nil
	})
	if reason == "" {
		return "the agent gave no reason; see the log of edgefort-dev"
	}
	return reason
}
