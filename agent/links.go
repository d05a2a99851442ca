package agent

import (
	"context"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/internal/supervisor"
	"github.com/edgefort/edgefort/iot"
	"github.com/edgefort/edgefort/updater/deploy"
)

// links are the link nodes components() built, each nil when its section
// is off. components() hands each to the nodes built after it that need
// it, as the interface they declare, and stores them once before anything
// starts; the admin API, Status and the shadow's reported state read them
// from there. The agent keeps no link of its own.
type links struct {
	updates *deploy.Node      // when device.device_type is set
	cloud   *cloudclient.Node // when cloud.enabled
	iot     *iot.Node         // when iot.enabled
}

// poller is the update channel's server poller; nil when it is off.
func (l *links) poller() *deploy.Poller {
	if l == nil {
		return nil
	}
	return pollerOf(l.updates)
}

// pollerOf is an update node's server poller; nil when it is off.
func pollerOf(n *deploy.Node) *deploy.Poller {
	if n == nil {
		return nil
	}
	return n.Poller()
}

// machine is the update state machine; nil without a device type.
func (l *links) machine() *deploy.Machine {
	if l == nil || l.updates == nil {
		return nil
	}
	return l.updates.Machine()
}

// updateSpecs, cloudSpecs and iotSpecs are a link's components, none
// when it is off.
func updateSpecs(n *deploy.Node) []supervisor.Spec {
	if n == nil {
		return nil
	}
	return []supervisor.Spec{{Name: "updates", SignalsReady: true, Runner: n}}
}

func cloudSpecs(n *cloudclient.Node) []supervisor.Spec {
	if n == nil {
		return nil
	}
	return n.Components() // the outbox's sender
}

func iotSpecs(n *iot.Node) []supervisor.Spec {
	if n == nil {
		return nil
	}
	return n.Components()
}

// status adds each built link's part to st.
func (l *links) status(a *Agent, st *adminapi.Status) {
	if l == nil {
		return
	}
	if l.updates != nil {
		st.Updates, _ = a.updates(l).UpdateStatus(context.Background())
	}
	if l.cloud != nil {
		st.Cloud = cloudStatus(l.cloud)
	}
	if l.iot != nil {
		ls := l.iot.Status()
		st.IoT = &adminapi.EventLink{
			State: string(ls.State), Since: ls.Since, Reconnects: ls.Reconnects, Throttled: ls.Throttled, LastError: ls.LastError,
			LastErrorAt: ls.LastErrorAt, MessagesIn: ls.MessagesIn, MessagesOut: ls.MessagesOut,
		}
	}
}

// updates is the update machine under the agent's lifetime, for the admin
// API and the status.
func (a *Agent) updates(l *links) *adminapi.LocalUpdates {
	u := &adminapi.LocalUpdates{Machine: l.machine(), Lifetime: a.runCtx, Restarts: true}
	if p := l.poller(); p != nil {
		u.Poller, u.ServerURL = p, a.cfg.Updates.ServerURL
	}
	return u
}
