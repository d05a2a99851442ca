package updater

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
)

// Attributes the client always sends.
const (
	AttrArtifactName = "artifact_name"
	AttrDeviceType   = "device_type"
	// AttrAgentVersion carries ClientOptions.AgentVersion. Mender's client
	// sends mender_client_version; edgefort is not that client, so it
	// reports its own name.
	AttrAgentVersion = "edgefort_version"
)

// Attribute is one inventory attribute. Value is a string or a []string.
type Attribute struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
}

// SendInventory replaces the device's inventory with artifact_name,
// device_type and the agent version from dev and the client's options,
// then the installed Artifacts' provides (dev.Provides, such as
// rootfs-image.version: the software versions, as the Mender client sends
// them), followed by attrs (whose entries with any of those names are
// dropped: the device's own record wins).
// It sends PUT and, when the server answers 405, PATCH.
func (c *Client) SendInventory(ctx context.Context, dev DeviceState, attrs []Attribute) error {
	if err := c.sendInventory(ctx, dev, attrs); err != nil {
		return fmt.Errorf("updater: send inventory: %w", err)
	}
	return nil
}

func (c *Client) sendInventory(ctx context.Context, dev DeviceState, attrs []Attribute) error {
	all := []Attribute{
		{Name: AttrArtifactName, Value: dev.ArtifactName},
		{Name: AttrDeviceType, Value: dev.DeviceType},
		{Name: AttrAgentVersion, Value: c.version},
	}
	for _, k := range slices.Sorted(maps.Keys(dev.Provides)) {
		switch k {
		case AttrArtifactName, AttrDeviceType, AttrAgentVersion, "":
			continue
		}
		all = append(all, Attribute{Name: k, Value: dev.Provides[k]})
	}
	for _, a := range attrs {
		switch a.Name {
		case AttrArtifactName, AttrDeviceType, AttrAgentVersion, "":
			continue
		}
		if _, ok := dev.Provides[a.Name]; ok {
			continue
		}
		switch a.Value.(type) {
		case string, []string:
		default:
			return fmt.Errorf("attribute %q: value is %T, want string or []string", a.Name, a.Value)
		}
		all = append(all, a)
	}
	for _, method := range []string{http.MethodPut, http.MethodPatch} {
		resp, err := c.do(ctx, apiRequest{method: method, path: pathInventory, body: all})
		if err != nil {
			return err
		}
		switch resp.StatusCode {
		case http.StatusOK, http.StatusNoContent:
			drain(resp)
			return nil
		case http.StatusMethodNotAllowed:
			if method == http.MethodPut {
				drain(resp)
				c.log.Debug("updater: inventory PUT not allowed, using PATCH")
				continue
			}
		}
		return fmt.Errorf("%s: %w", method, statusError(resp))
	}
	panic("unreachable")
}
