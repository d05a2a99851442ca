package agent

import (
	"errors"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/internal/supervisor"
)

// cloudComponents builds the control plane link when cloud.enabled:
// cloudclient.Node owns the client, the authorization cache and the
// outbox; the agent hands it the store and the keystores. The node must be
// enrolled: the device ID and key come from the enrollment.
func (a *Agent) cloudComponents() ([]supervisor.Spec, error) {
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
	a.cloud = n
	return n.Components(), nil
}

// cloudStatus is the control plane link's part of the status.
func (a *Agent) cloudStatus() *adminapi.CloudStatus {
	e := a.cloud.Enrollment()
	return &adminapi.CloudStatus{DeviceID: e.DeviceID, ControlPlaneURL: a.cloud.BaseURL(), Endpoints: e.Endpoints, Enrolled: e.Enrolled, OutboxQueued: a.cloud.Outbox().Len()}
}
