package devcloud

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/edgefort/edgefort/updater/artifact"
)

// menderLinkPrefix is where presigned download links live. A link's token
// is unguessable and expires; no JWT is needed to use it.
const menderLinkPrefix = "/api/devices/v1/download/"

// The statuses a device may report, and which of them end a deployment.
var (
	menderStatuses = []string{"downloading", "pause_before_installing", "installing",
		"pause_before_rebooting", "rebooting", "pause_before_committing",
		"success", "failure", "already-installed"}
	menderFinal = []string{"success", "failure", "already-installed", "noartifact"}
)

type menderArtifact struct {
	id          string
	name        string
	deviceTypes []string
	data        []byte
}

type menderDeployment struct {
	id         string
	artifactID string
	devices    []string // nil: every device
	aborted    bool
	statuses   map[string][]string     // device ID → reported statuses
	logs       map[string][]LogMessage // device ID → uploaded messages
}

type menderLink struct {
	artifactID string
	expire     time.Time
}

// LogMessage is one line of a deployment log upload.
type LogMessage struct {
	Timestamp string `json:"timestamp"`
	Level     string `json:"level"`
	Message   string `json:"message"`
}

// ErrArtifactExists is returned by UploadArtifact for a name already
// uploaded; as on a Mender server, Artifact names are unique.
var ErrArtifactExists = errors.New("artifact name already exists")

// UploadArtifact stores an Artifact read from r (kept in memory) and
// returns its name, which CreateDeployment takes. The name and compatible
// device types come from the Artifact's header; the signature is not
// checked (that is the device's job).
func (s *MenderServer) UploadArtifact(r io.Reader) (string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("upload artifact: %w", err)
	}
	h, err := artifact.NewReader(bytes.NewReader(data), artifact.Options{AllAugments: true}).Header()
	if err != nil {
		return "", fmt.Errorf("upload artifact: %w", err)
	}
	if len(h.Depends.DeviceTypes) == 0 {
		return "", errors.New("upload artifact: no compatible device types")
	}
	a := &menderArtifact{id: newID(), name: h.Name, deviceTypes: slices.Clone(h.Depends.DeviceTypes), data: data}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, old := range s.artifacts {
		if old.name == h.Name {
			return "", fmt.Errorf("upload artifact: %q: %w", h.Name, ErrArtifactExists)
		}
	}
	s.artifacts[a.id] = a
	return a.name, nil
}

// UploadArtifactFile is UploadArtifact reading the file at path.
func (s *MenderServer) UploadArtifactFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("upload artifact: %w", err)
	}
	defer f.Close()
	return s.UploadArtifact(f)
}

// CreateDeployment deploys the uploaded Artifact named artifactName to
// deviceIDs, or to every device when deviceIDs is empty, and returns the
// deployment ID.
func (s *MenderServer) CreateDeployment(artifactName string, deviceIDs ...string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.artifacts {
		if a.name == artifactName {
			d := &menderDeployment{
				id: newID(), artifactID: a.id, devices: slices.Clone(deviceIDs),
				statuses: make(map[string][]string), logs: make(map[string][]LogMessage),
			}
			s.deployments = append(s.deployments, d)
			return d.id, nil
		}
	}
	return "", fmt.Errorf("create deployment: no artifact named %q", artifactName)
}

// Abort aborts a deployment: devices get 409 on their next status report.
func (s *MenderServer) Abort(deploymentID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deploymentLocked(deploymentID)
	if d == nil {
		return fmt.Errorf("abort: no deployment %q", deploymentID)
	}
	d.aborted = true
	return nil
}

// Statuses returns the statuses deviceID reported for a deployment, in
// order, including the server-decided already-installed and noartifact.
func (s *MenderServer) Statuses(deviceID, deploymentID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.deploymentLocked(deploymentID); d != nil {
		return slices.Clone(d.statuses[deviceID])
	}
	return nil
}

// Logs returns the log messages deviceID uploaded for a deployment.
func (s *MenderServer) Logs(deviceID, deploymentID string) []LogMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.deploymentLocked(deploymentID); d != nil {
		return slices.Clone(d.logs[deviceID])
	}
	return nil
}

func (s *MenderServer) deploymentLocked(id string) *menderDeployment {
	for _, d := range s.deployments {
		if d.id == id {
			return d
		}
	}
	return nil
}

// finished reports whether the device has a final status in d.
func (d *menderDeployment) finished(deviceID string) bool {
	st := d.statuses[deviceID]
	return len(st) > 0 && slices.Contains(menderFinal, st[len(st)-1])
}

func (d *menderDeployment) targets(deviceID string) bool {
	return len(d.devices) == 0 || slices.Contains(d.devices, deviceID)
}

// nextRequest is the union of the bodies of v1 POST (flat or with nested
// artifact_provides) and the fields v2 nests in device_provides.
type nextRequest struct {
	ArtifactName string `json:"artifact_name"`
	DeviceType   string `json:"device_type"`
}

func (s *MenderServer) handleNextV2(w http.ResponseWriter, r *http.Request) {
	if s.opts.DisableV2 {
		s.errorf(w, r, http.StatusNotFound, "v2 deployments/next is not served")
		return
	}
	var req struct {
		DeviceProvides nextRequest `json:"device_provides"`
	}
	if s.decodeBody(w, r, &req) {
		s.next(w, r, req.DeviceProvides)
	}
}

func (s *MenderServer) handleNextV1Post(w http.ResponseWriter, r *http.Request) {
	var req nextRequest
	if s.decodeBody(w, r, &req) {
		s.next(w, r, req)
	}
}

func (s *MenderServer) handleNextV1Get(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.next(w, r, nextRequest{ArtifactName: q.Get("artifact_name"), DeviceType: q.Get("device_type")})
}

// next is the decision of deployments/next: the oldest unfinished,
// unaborted deployment for the device; noartifact when its device type
// does not fit, already-installed when it runs that Artifact (both 204).
func (s *MenderServer) next(w http.ResponseWriter, r *http.Request, req nextRequest) {
	if req.ArtifactName == "" || req.DeviceType == "" {
		s.errorf(w, r, http.StatusBadRequest, "artifact_name and device_type are required")
		return
	}
	dev := requestDeviceID(r)
	s.mu.Lock()
	var d *menderDeployment
	var a *menderArtifact
	for _, c := range s.deployments {
		if c.aborted || !c.targets(dev) || c.finished(dev) {
			continue
		}
		if a = s.artifacts[c.artifactID]; a == nil {
			continue
		}
		d = c
		if !slices.Contains(a.deviceTypes, req.DeviceType) {
			d.statuses[dev] = append(d.statuses[dev], "noartifact")
			d = nil
			continue
		}
		if a.name == req.ArtifactName {
			d.statuses[dev] = append(d.statuses[dev], "already-installed")
			d = nil
			continue
		}
		break
	}
	if d == nil {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	for t, l := range s.links {
		if !s.now().Before(l.expire) {
			delete(s.links, t)
		}
	}
	token := s.linkTokenLocked(a.id)
	expire := s.now().Add(s.opts.LinkLifetime).UTC()
	s.links[token] = menderLink{artifactID: a.id, expire: expire}
	resp := map[string]any{
		"id": d.id,
		"artifact": map[string]any{
			"id":                      a.id,
			"artifact_name":           a.name,
			"source":                  map[string]string{"uri": s.URL() + menderLinkPrefix + token, "expire": expire.Format(time.RFC3339)},
			"device_types_compatible": a.deviceTypes,
		},
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

// linkTokenLocked makes a fresh unguessable token: HMAC of the artifact
// ID and a random nonce under a server-only key.
func (s *MenderServer) linkTokenLocked(artifactID string) string {
	m := hmac.New(sha256.New, s.linkKey)
	m.Write([]byte(artifactID + newID()))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *MenderServer) handleStatus(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Status   string `json:"status"`
		Substate string `json:"substate"`
	}
	if !s.decodeBody(w, r, &req) {
		return
	}
	if !slices.Contains(menderStatuses, req.Status) {
		s.errorf(w, r, http.StatusBadRequest, "unknown status %q", req.Status)
		return
	}
	dev := requestDeviceID(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deploymentLocked(r.PathValue("id"))
	if d == nil || !d.targets(dev) {
		s.errorf(w, r, http.StatusNotFound, "no deployment %q for this device", r.PathValue("id"))
		return
	}
	if d.aborted {
		s.errorf(w, r, http.StatusConflict, "deployment aborted")
		return
	}
	if d.finished(dev) {
		s.errorf(w, r, http.StatusConflict, "deployment already finished for this device")
		return
	}
	d.statuses[dev] = append(d.statuses[dev], req.Status)
	s.log.Info("mender status", "device_id", dev, "deployment_id", d.id, "status", req.Status, "substate", req.Substate)
	w.WriteHeader(http.StatusNoContent)
}

func (s *MenderServer) handleLog(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Messages []LogMessage `json:"messages"`
	}
	if !s.decodeBody(w, r, &req) {
		return
	}
	dev := requestDeviceID(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deploymentLocked(r.PathValue("id"))
	if d == nil || !d.targets(dev) {
		s.errorf(w, r, http.StatusNotFound, "no deployment %q for this device", r.PathValue("id"))
		return
	}
	d.logs[dev] = append(d.logs[dev], req.Messages...)
	w.WriteHeader(http.StatusNoContent)
}

// handleDownload serves an Artifact by presigned link: Range (206 and
// Content-Range) via http.ServeContent, Content-Length always, never a
// Content-Encoding.
func (s *MenderServer) handleDownload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.injectLocked(w, r, EndpointDownload) {
		s.mu.Unlock()
		return
	}
	l, ok := s.links[r.PathValue("token")]
	a := s.artifacts[l.artifactID]
	cut := s.faults.CutAfter
	s.faults.CutAfter = 0
	s.mu.Unlock()
	if !ok || a == nil {
		s.errorf(w, r, http.StatusNotFound, "no such link")
		return
	}
	if !s.now().Before(l.expire) {
		s.errorf(w, r, http.StatusForbidden, "link expired")
		return
	}
	s.log.Info("mender download", "artifact", a.name, "range", r.Header.Get("Range"), "cut_after", cut)
	w.Header().Set("Content-Type", "application/vnd.mender-artifact")
	if cut > 0 {
		w = &cutWriter{ResponseWriter: w, left: cut}
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.data))
}

// cutWriter passes through left body bytes, flushes them, then aborts the
// connection.
type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) < c.left {
		c.left -= int64(len(p))
		return c.ResponseWriter.Write(p)
	}
	c.ResponseWriter.Write(p[:c.left])
	c.left = 0
	http.NewResponseController(c.ResponseWriter).Flush()
	panic(http.ErrAbortHandler)
}
