package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/agent/supervisor"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/cloudclient/outbox"
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

// CloudStatus is what GET /v1/cloud answers.
type CloudStatus struct {
	DeviceID        string        `json:"device_id"`
	ControlPlaneURL string        `json:"control_plane_url"`
	Endpoints       api.Endpoints `json:"endpoints"`
	Enrolled        time.Time     `json:"enrolled"`
	OutboxQueued    int           `json:"outbox_queued"`
}

// ReportRequest is the body of POST /v1/cloud/report.
type ReportRequest struct {
	Stream string          `json:"stream"`
	Type   string          `json:"type"`
	Body   json.RawMessage `json:"body,omitempty"`
	High   bool            `json:"high,omitempty"`
}

var errNoCloud = errors.New("the control plane link is off: enroll the node and set cloud.enabled: true")

func (a *Agent) cloudHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/cloud", func(w http.ResponseWriter, r *http.Request) {
		if a.cloud == nil {
			writeAdminError(w, http.StatusConflict, errNoCloud)
			return
		}
		writeAdminJSON(w, a.cloudStatus())
	})
	mux.HandleFunc("POST /v1/cloud/authorize", func(w http.ResponseWriter, r *http.Request) {
		if a.cloud == nil {
			writeAdminError(w, http.StatusConflict, errNoCloud)
			return
		}
		var req api.AuthorizeRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			writeAdminError(w, http.StatusBadRequest, fmt.Errorf("authorize request: %w", err))
			return
		}
		d, err := a.cloud.authorizer.Decide(r.Context(), req)
		if err != nil {
			// The decision (a deny) stands; say why too.
			writeAdminJSON(w, map[string]any{"decision": d, "error": err.Error()})
			return
		}
		writeAdminJSON(w, map[string]any{"decision": d})
	})
	mux.HandleFunc("POST /v1/cloud/report", func(w http.ResponseWriter, r *http.Request) {
		if a.cloud == nil {
			writeAdminError(w, http.StatusConflict, errNoCloud)
			return
		}
		var req ReportRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			writeAdminError(w, http.StatusBadRequest, fmt.Errorf("report: %w", err))
			return
		}
		prio := outbox.Low
		if req.High {
			prio = outbox.High
		}
		key, err := a.cloud.outbox.Enqueue(r.Context(), outbox.Item{Stream: req.Stream, Type: req.Type, Body: req.Body, Priority: prio})
		if err != nil {
			writeAdminError(w, http.StatusBadRequest, err)
			return
		}
		writeAdminJSON(w, map[string]string{"idempotency_key": key})
	})
}

func (a *Agent) cloudStatus() *CloudStatus {
	e := a.cloud.enrollment
	base := a.cfg.Cloud.URL
	if base == "" {
		base = e.Endpoints.ControlPlaneURL
	}
	return &CloudStatus{DeviceID: e.DeviceID, ControlPlaneURL: base, Endpoints: e.Endpoints, Enrolled: e.Enrolled, OutboxQueued: a.cloud.outbox.Len()}
}

// CloudAuthorize asks the running agent for an authorization decision.
func (c *AdminClient) CloudAuthorize(ctx context.Context, req api.AuthorizeRequest) (cloudclient.Decision, string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return cloudclient.Decision{}, "", err
	}
	data, err := c.do(ctx, http.MethodPost, "/v1/cloud/authorize", body)
	if err != nil {
		return cloudclient.Decision{}, "", err
	}
	var resp struct {
		Decision cloudclient.Decision `json:"decision"`
		Error    string               `json:"error"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return cloudclient.Decision{}, "", fmt.Errorf("admin: decode decision: %w", err)
	}
	return resp.Decision, resp.Error, nil
}

// CloudReport queues a report in the running agent's outbox and returns
// its idempotency key.
func (c *AdminClient) CloudReport(ctx context.Context, req ReportRequest) (string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	data, err := c.do(ctx, http.MethodPost, "/v1/cloud/report", body)
	if err != nil {
		return "", err
	}
	var resp struct {
		Key string `json:"idempotency_key"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return "", fmt.Errorf("admin: decode report answer: %w", err)
	}
	return resp.Key, nil
}

// CloudStatus fetches GET /v1/cloud.
func (c *AdminClient) CloudStatus(ctx context.Context) (*CloudStatus, error) {
	data, err := c.do(ctx, http.MethodGet, "/v1/cloud", nil)
	if err != nil {
		return nil, err
	}
	var st CloudStatus
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("admin: decode cloud status: %w", err)
	}
	return &st, nil
}
