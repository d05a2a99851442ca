package agent

import (
	"errors"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/cloudclient"
)

// cloudComponents builds the control plane link when cloud.enabled:
// cloudclient.Node owns the client, the authorization cache and the
// outbox; the agent hands it the store and the keystores. The node must be
// enrolled: the device ID and key come from the enrollment.
func (a *Agent) cloudComponents() (*cloudclient.Node, error) {
	if !a.cfg.Cloud.Enabled {
		return nil, nil
	}
	n, err := cloudclient.NewNode(a.cfg.Cloud, cloudclient.NodeDeps{
		Store:      a.db,
		Keystores:  a.keystores.Stores,
		Logger:     a.log.With(LogKeyComponent, "cloud"),
		Registerer: a.reg,
	})
	var fe *cloudclient.FieldError
	if errors.As(err, &fe) {
		return nil, &config.Error{Problems: []config.Problem{a.cfg.Problem(fe.Field, "%v", fe.Err)}}
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

// cloudStatus is the control plane link's part of the status.
func cloudStatus(n *cloudclient.Node) *adminapi.CloudStatus {
	e := n.Enrollment()
	return &adminapi.CloudStatus{DeviceID: e.DeviceID, ControlPlaneURL: n.BaseURL(), Endpoints: e.Endpoints, Enrolled: e.Enrolled, OutboxQueued: n.Outbox().Len()}
}
