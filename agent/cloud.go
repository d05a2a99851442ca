package agent

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/cloudclient/outbox"
	"github.com/edgefort/edgefort/internal/supervisor"
	"github.com/edgefort/edgefort/keystore"
)

// cloudLink is the running control plane link: the client, the
// authorization cache and the outbox of reports.
type cloudLink struct {
	enrollment *Enrollment
	client     *cloudclient.Client
	authorizer *cloudclient.Authorizer
	outbox     *outbox.Outbox
}

// cloudComponents builds the control plane link when cloud.enabled. The
// node must be enrolled: the device ID and key come from the enrollment.
func (a *Agent) cloudComponents() ([]supervisor.Spec, error) {
	if !a.cfg.Cloud.Enabled {
		return nil, nil
	}
	e, err := LoadEnrollment(a.db)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, &config.Error{Problems: []config.Problem{a.cfg.Problem("cloud.enabled", "this node is not enrolled: run 'edgefort enroll --url URL --token TOKEN' first")}}
	}
	c := a.cfg.Cloud
	base := c.URL
	if base == "" {
		base = e.Endpoints.ControlPlaneURL
	}
	srv, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("cloud URL %q: %w", base, err)
	}
	ssl := c.SSL
	// An enrolled node trusts the cloud's CA and presents its device
	// certificate unless the configuration names other stores.
	if ssl.Truststore == "" {
		ssl.Truststore = "ref://" + RefCloudTrust
	}
	if ssl.Keystore == "" {
		ssl.Keystore, ssl.KeyAlias = "ref://"+RefDeviceTLS, DeviceAlias
	}
	tlsCfg, err := a.keystores.Stores.ClientTLS(ssl, srv.Hostname(), keystore.Vars{})
	if err != nil {
		return nil, fmt.Errorf("cloud.ssl: %w", err)
	}
	st, err := a.keystores.Stores.Resolve("ref://"+RefDeviceTLS, keystore.KindKeystore)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	entry, err := st.Entry(DeviceAlias)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	log := a.log.With(LogKeyComponent, "cloud")
	client, err := cloudclient.New(cloudclient.Options{
		BaseURL:  base,
		TokenURL: e.Endpoints.TokenURL,
		HTTP: &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsCfg,
			ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second,
		}},
		DeviceID: e.DeviceID,
		Key:      entry.Key,
		Timeout:  c.Timeout,
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	authz, err := cloudclient.NewAuthorizer(cloudclient.AuthorizerOptions{Client: client, Config: c.Authorization, Registerer: a.reg, Logger: log})
	if err != nil {
		return nil, err
	}
	ob, err := outbox.New(outbox.Options{Store: a.db, Sender: client, Logger: log, Registerer: a.reg, Refused: refusedReport})
	if err != nil {
		return nil, err
	}
	a.cloud = &cloudLink{enrollment: e, client: client, authorizer: authz, outbox: ob}
	return []supervisor.Spec{{Name: "outbox", Runner: ob}}, nil
}

// refusedReport says whether the control plane refuses a batch of reports
// for what is in it (so the outbox must find and drop the bad one), rather
// than being unreachable or refusing this node.
func refusedReport(err error) bool {
	var re *cloudclient.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	switch re.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// cloudStatus is the control plane link's part of the status.
func (a *Agent) cloudStatus() *adminapi.CloudStatus {
	e := a.cloud.enrollment
	base := a.cfg.Cloud.URL
	if base == "" {
		base = e.Endpoints.ControlPlaneURL
	}
	return &adminapi.CloudStatus{DeviceID: e.DeviceID, ControlPlaneURL: base, Endpoints: e.Endpoints, Enrolled: e.Enrolled, OutboxQueued: a.cloud.outbox.Len()}
}
