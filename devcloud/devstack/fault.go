package devstack

import (
	"context"
	"fmt"
	"net/http"

	"github.com/edgefort/edgefort/devcloud"
)

// The fault knobs of a running stack's broker and update server, through
// their management APIs (devcloud/faults_manage.go): how `edgefort-dev
// fault` plays the cloud's limits against the node.

// BrokerStatus is what the broker's management API says of its faults
// and counters.
type BrokerStatus struct {
	devcloud.BrokerStats
	// Connections is the number of MQTT clients connected now.
	Connections int
}

// brokerURL is the broker's management route path.
func (c *Client) brokerURL(path string) string {
	return "https://" + c.Info.Broker.Host + "/api/management/dev/" + path
}

// BrokerFaults returns the broker's fault knobs in force.
func (c *Client) BrokerFaults(ctx context.Context) (devcloud.BrokerFaults, error) {
	var f devcloud.BrokerFaults
	if err := call(ctx, c.tls, "broker", http.MethodGet, c.brokerURL("faults"), c.Info.Broker.ManagementToken, nil, &f, 64<<10); err != nil {
		return f, fmt.Errorf("read the broker's faults: %w", err)
	}
	return f, nil
}

// SetBrokerFaults replaces the broker's fault knobs and returns those in
// force after it (DropConnections acted and is off again).
func (c *Client) SetBrokerFaults(ctx context.Context, f devcloud.BrokerFaults) (devcloud.BrokerFaults, error) {
	var got devcloud.BrokerFaults
	if err := call(ctx, c.tls, "broker", http.MethodPut, c.brokerURL("faults"), c.Info.Broker.ManagementToken, f, &got, 64<<10); err != nil {
		return got, fmt.Errorf("set the broker's faults: %w", err)
	}
	return got, nil
}

// BrokerStatus returns the broker's counters.
func (c *Client) BrokerStatus(ctx context.Context) (BrokerStatus, error) {
	var st BrokerStatus
	if err := call(ctx, c.tls, "broker", http.MethodGet, c.brokerURL("stats"), c.Info.Broker.ManagementToken, nil, &st, 64<<10); err != nil {
		return st, fmt.Errorf("read the broker's counters: %w", err)
	}
	return st, nil
}

// MenderFaults returns the update server's fault knobs in force.
func (c *Client) MenderFaults(ctx context.Context) (devcloud.MenderFaults, error) {
	var f devcloud.MenderFaults
	if err := c.menderCall(ctx, http.MethodGet, "faults", nil, &f); err != nil {
		return f, fmt.Errorf("read the update server's faults: %w", err)
	}
	return f, nil
}

// SetMenderFaults replaces the update server's fault knobs and returns
// those in force after it.
func (c *Client) SetMenderFaults(ctx context.Context, f devcloud.MenderFaults) (devcloud.MenderFaults, error) {
	var got devcloud.MenderFaults
	if err := c.menderCall(ctx, http.MethodPut, "faults", f, &got); err != nil {
		return got, fmt.Errorf("set the update server's faults: %w", err)
	}
	return got, nil
}

// MenderStats returns the update server's request counters.
func (c *Client) MenderStats(ctx context.Context) (devcloud.MenderStats, error) {
	var st devcloud.MenderStats
	if err := c.menderCall(ctx, http.MethodGet, "stats", nil, &st); err != nil {
		return st, fmt.Errorf("read the update server's counters: %w", err)
	}
	return st, nil
}
