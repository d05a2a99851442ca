package updater

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/edgefort/edgefort/internal/httpbody"
)

// DeviceState is what the device currently provides, sent when asking for
// a deployment.
type DeviceState struct {
	// ArtifactName is the installed artifact. Required.
	ArtifactName string
	// DeviceType is this device's type. Required.
	DeviceType string
	// Provides are further provides of the installed artifact (such as
	// artifact_group or rootfs-image.checksum). Optional; entries named
	// artifact_name or device_type are ignored.
	Provides map[string]string
}

// Deployment is a pending deployment for this device.
type Deployment struct {
	// ID is the deployment ID used for status and log reports.
	ID string
	// ArtifactName is the name of the artifact to install; the artifact's
	// own header must carry the same name.
	ArtifactName string
	// URI is the presigned download link (fetch with Download, no JWT).
	URI string
	// Expire is when URI stops working; zero if the server gave none.
	Expire time.Time
	// DeviceTypes are the device types the artifact is compatible with.
	DeviceTypes []string
}

type nextResponse struct {
	ID       string `json:"id"`
	Artifact struct {
		ID           string `json:"id"`
		ArtifactName string `json:"artifact_name"`
		Source       struct {
			URI    string    `json:"uri"`
			Expire time.Time `json:"expire"`
		} `json:"source"`
		DeviceTypes []string `json:"device_types_compatible"`
	} `json:"artifact"`
}

// NextDeployment asks whether a deployment is pending. It returns nil, nil
// when there is none (204). It tries v2 POST, then on 404 v1 POST, then on
// 404 v1 GET, as Mender's Go client does; any other failure stops the chain.
func (c *Client) NextDeployment(ctx context.Context, st DeviceState) (*Deployment, error) {
	d, err := c.nextDeployment(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("updater: next deployment: %w", err)
	}
	return d, nil
}

func (c *Client) nextDeployment(ctx context.Context, st DeviceState) (*Deployment, error) {
	if st.ArtifactName == "" || st.DeviceType == "" {
		return nil, errors.New("artifact name and device type are required")
	}
	provides := map[string]string{}
	for k, v := range st.Provides {
		provides[k] = v
	}
	provides["artifact_name"] = st.ArtifactName
	provides["device_type"] = st.DeviceType

	q := url.Values{"artifact_name": {st.ArtifactName}, "device_type": {st.DeviceType}}
	chain := []apiRequest{
		{method: http.MethodPost, path: pathNextV2, body: map[string]any{"device_provides": provides}},
		{method: http.MethodPost, path: pathNextV1, body: provides},
		{method: http.MethodGet, path: pathNextV1 + "?" + q.Encode()},
	}
	for i, req := range chain {
		resp, err := c.do(ctx, req)
		if err != nil {
			return nil, err
		}
		switch resp.StatusCode {
		case http.StatusNotFound:
			drain(resp)
			if i < len(chain)-1 {
				c.log.Debug("updater: next not found, falling back", logKeyPath, req.path)
				continue
			}
			return nil, fmt.Errorf("%s %s: %w", req.method, req.path, statusError(resp))
		case http.StatusNoContent:
			drain(resp)
			return nil, nil
		case http.StatusOK:
			return c.decodeDeployment(resp, st.DeviceType)
		default:
			return nil, fmt.Errorf("%s %s: %w", req.method, req.path, statusError(resp))
		}
	}
	panic("unreachable")
}

// Limits of a next-deployment reply. Mender's deployments service accepts
// artifact names and device types of 1 to 4096 bytes and at most 200
// device types per Artifact (ArtifactMeta.Validate in mender-server), so
// the largest reply it can send is about 820 KiB; anything past these
// limits did not come from a Mender server.
const (
	maxNextReply    = 1 << 20
	maxArtifactName = 4096
	maxDeviceTypes  = 200
	maxDeviceType   = 4096
	// maxDeploymentID: Mender's deployment IDs are UUIDs (36 bytes). The
	// ID is kept in the update record and sent back in URL paths.
	maxDeploymentID = 1 << 10
	// maxDownloadURI is twice the 8 KiB request line that nginx and
	// Apache accept by default; presigned S3, Azure and GCS links are 0.5
	// to 3 KiB.
	maxDownloadURI = 16 << 10
)

func (c *Client) decodeDeployment(resp *http.Response, deviceType string) (*Deployment, error) {
	defer resp.Body.Close()
	b, err := httpbody.Read(resp, maxNextReply, "reply")
	if err != nil {
		return nil, err
	}
	return parseDeployment(b, deviceType)
}

// parseDeployment reads a 200 reply to deployments/next: one JSON object
// with the fields Mender's client requires, each within its limit, for an
// Artifact compatible with deviceType.
func parseDeployment(b []byte, deviceType string) (*Deployment, error) {
	var nr nextResponse
	if err := httpbody.DecodeJSON(b, &nr, "reply"); err != nil {
		return nil, err
	}
	d := &Deployment{
		ID:           nr.ID,
		ArtifactName: nr.Artifact.ArtifactName,
		URI:          nr.Artifact.Source.URI,
		Expire:       nr.Artifact.Source.Expire,
		DeviceTypes:  nr.Artifact.DeviceTypes,
	}
	// Lengths first, so that no error below echoes an oversize value.
	if err := errors.Join(
		httpbody.CheckLen("id", d.ID, maxDeploymentID),
		httpbody.CheckLen("artifact.artifact_name", d.ArtifactName, maxArtifactName),
		httpbody.CheckLen("artifact.source.uri", d.URI, maxDownloadURI),
		httpbody.CheckList("artifact.device_types_compatible", d.DeviceTypes, maxDeviceTypes, maxDeviceType),
	); err != nil {
		return nil, fmt.Errorf("reply: %w", err)
	}
	switch {
	case d.ID == "":
		return nil, errors.New("deployment has no id")
	case d.ArtifactName == "":
		return nil, fmt.Errorf("deployment %s has no artifact name", d.ID)
	case d.URI == "":
		return nil, fmt.Errorf("deployment %s has no download link", d.ID)
	case !slices.Contains(d.DeviceTypes, deviceType):
		types := d.DeviceTypes
		more := ""
		if len(types) > 8 {
			types, more = types[:8], fmt.Sprintf(" and %d more", len(types)-8)
		}
		return nil, fmt.Errorf("deployment %s: artifact %q is for device types %q%s, not %q",
			d.ID, d.ArtifactName, types, more, deviceType)
	}
	return d, nil
}

// Deployment statuses, as the server knows them.
const (
	StatusDownloading           = "downloading"
	StatusPauseBeforeInstalling = "pause_before_installing"
	StatusInstalling            = "installing"
	StatusPauseBeforeRebooting  = "pause_before_rebooting"
	StatusRebooting             = "rebooting"
	StatusPauseBeforeCommitting = "pause_before_committing"
	StatusSuccess               = "success"
	StatusFailure               = "failure"
	StatusAlreadyInstalled      = "already-installed"
)

var statuses = []string{
	StatusDownloading, StatusPauseBeforeInstalling, StatusInstalling,
	StatusPauseBeforeRebooting, StatusRebooting, StatusPauseBeforeCommitting,
	StatusSuccess, StatusFailure, StatusAlreadyInstalled,
}

// ReportStatus reports the deployment's status, with an optional substate
// (such as "Executing script: ..."). A 409 gives ErrAborted: the deployment
// was aborted, so stop and roll back.
func (c *Client) ReportStatus(ctx context.Context, id, status, substate string) error {
	if err := c.reportStatus(ctx, id, status, substate); err != nil {
		return fmt.Errorf("updater: report status %q for deployment %s: %w", status, id, err)
	}
	return nil
}

func (c *Client) reportStatus(ctx context.Context, id, status, substate string) error {
	if id == "" {
		return errors.New("deployment id is required")
	}
	if !slices.Contains(statuses, status) {
		return fmt.Errorf("unknown status (want one of %q)", statuses)
	}
	body := struct {
		Status   string `json:"status"`
		Substate string `json:"substate,omitempty"`
	}{status, substate}
	resp, err := c.do(ctx, apiRequest{method: http.MethodPut, path: pathDeploy + url.PathEscape(id) + "/status", body: body})
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		drain(resp)
		return nil
	case http.StatusConflict:
		return fmt.Errorf("%w: %w", ErrAborted, statusError(resp))
	default:
		return statusError(resp)
	}
}
