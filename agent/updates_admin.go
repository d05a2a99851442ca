package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/edgefort/edgefort/updater/deploy"
	"github.com/edgefort/edgefort/updater/module"
)

// UpdateStatus is what GET /v1/update answers and `edgefort update status`
// prints.
type UpdateStatus struct {
	// Channel is true when the update channel to the server is enabled.
	Channel       bool                 `json:"channel"`
	ServerURL     string               `json:"server_url,omitempty"`
	ArtifactName  string               `json:"artifact_name"`
	ArtifactGroup string               `json:"artifact_group,omitempty"`
	Provides      map[string]string    `json:"provides,omitempty"`
	InFlight      *InFlightUpdate      `json:"in_flight,omitempty"`
	Poller        *deploy.PollerStatus `json:"poller,omitempty"`
}

// InFlightUpdate is the deployment in progress.
type InFlightUpdate struct {
	DeploymentID string    `json:"deployment_id,omitempty"`
	ArtifactName string    `json:"artifact_name,omitempty"`
	Step         string    `json:"step"`
	Outcome      string    `json:"outcome,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	Started      time.Time `json:"started"`
}

// UpdateStatusOf reads the update state from m (running or offline).
func UpdateStatusOf(m *deploy.Machine) (*UpdateStatus, error) {
	dev, err := m.Device()
	if err != nil {
		return nil, err
	}
	st := &UpdateStatus{ArtifactName: dev.ArtifactName, ArtifactGroup: dev.ArtifactGroup, Provides: dev.Provides}
	rec, err := m.InFlight()
	if err != nil {
		return nil, err
	}
	if rec != nil {
		st.InFlight = &InFlightUpdate{
			DeploymentID: rec.DeploymentID, ArtifactName: rec.ArtifactName, Step: string(rec.Step),
			Outcome: string(rec.Outcome), Reason: rec.Reason, Started: rec.Started,
		}
	}
	return st, nil
}

// updateStatus is the running agent's update state.
func (a *Agent) updateStatus() (*UpdateStatus, error) {
	st, err := UpdateStatusOf(a.updates)
	if err != nil {
		return nil, err
	}
	if a.poller != nil {
		st.Channel, st.ServerURL = true, a.cfg.Updates.ServerURL
		ps := a.poller.Status()
		st.Poller = &ps
	}
	return st, nil
}

// OutcomeRestarting is the admin answer when the update goes on after the
// agent restarts; follow it with GET /v1/update.
const OutcomeRestarting deploy.Outcome = "restarting"

// errNoUpdates is the admin answer when the machine is not configured.
var errNoUpdates = errors.New("updates are not configured: set device.device_type in the configuration")

func (a *Agent) updateHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/update", func(w http.ResponseWriter, r *http.Request) {
		if a.updates == nil {
			writeAdminError(w, http.StatusConflict, errNoUpdates)
			return
		}
		st, err := a.updateStatus()
		if err != nil {
			writeAdminError(w, http.StatusInternalServerError, err)
			return
		}
		writeAdminJSON(w, st)
	})
	mux.HandleFunc("POST /v1/update/check", func(w http.ResponseWriter, r *http.Request) {
		if a.poller == nil {
			writeAdminError(w, http.StatusConflict, errors.New("the update channel is off: set updates.enabled: true (and updates.server_url) to check a server"))
			return
		}
		a.poller.CheckNow()
		writeAdminJSON(w, map[string]string{"status": "check requested"})
	})
	mux.HandleFunc("POST /v1/update/install", func(w http.ResponseWriter, r *http.Request) {
		a.updateOp(w, func(ctx context.Context) (deploy.Result, error) {
			job := deploy.Job{Standalone: r.URL.Query().Get("commit") != "true"}
			return a.updates.Install(ctx, r.Body, job)
		})
	})
	mux.HandleFunc("POST /v1/update/commit", func(w http.ResponseWriter, r *http.Request) {
		a.updateOp(w, a.updates.Commit)
	})
	mux.HandleFunc("POST /v1/update/rollback", func(w http.ResponseWriter, r *http.Request) {
		a.updateOp(w, a.updates.Rollback)
	})
}

// updateOp runs a machine operation for an admin call. It runs under the
// agent's lifetime, not the request's: a client that goes away mid-install
// only cuts the artifact stream, which fails the download cleanly, instead
// of leaving a half-done step behind.
func (a *Agent) updateOp(w http.ResponseWriter, op func(context.Context) (deploy.Result, error)) {
	if a.updates == nil {
		writeAdminError(w, http.StatusConflict, errNoUpdates)
		return
	}
	res, err := op(a.runCtx)
	switch {
	case errors.Is(err, module.ErrRestartAgent):
		// The update goes on in the next process (a new agent binary to
		// verify, or the old one back): answer, then restart.
		res.Outcome = OutcomeRestarting
		writeAdminJSON(w, res)
		a.restart()
	case errors.Is(err, deploy.ErrBusy), errors.Is(err, deploy.ErrNothingToCommit):
		writeAdminError(w, http.StatusConflict, err)
	case err != nil:
		writeAdminError(w, http.StatusInternalServerError, err)
	default:
		writeAdminJSON(w, res)
	}
}

func writeAdminJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeAdminError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// UpdateStatus fetches GET /v1/update.
func (c *AdminClient) UpdateStatus(ctx context.Context) (*UpdateStatus, error) {
	body, err := c.do(ctx, http.MethodGet, "/v1/update", nil)
	if err != nil {
		return nil, err
	}
	var st UpdateStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("admin: decode update status: %w", err)
	}
	return &st, nil
}

// UpdateCheck asks the agent to check for a deployment now.
func (c *AdminClient) UpdateCheck(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/update/check", nil)
	return err
}

// UpdateInstall streams an Artifact to the agent and waits for the
// result. commit goes on through commit; otherwise the install waits for
// UpdateCommit or UpdateRollback.
func (c *AdminClient) UpdateInstall(ctx context.Context, artifact io.Reader, commit bool) (deploy.Result, error) {
	path := "/v1/update/install"
	if commit {
		path += "?commit=true"
	}
	return c.updateResult(ctx, path, artifact)
}

// UpdateCommit commits a standalone install.
func (c *AdminClient) UpdateCommit(ctx context.Context) (deploy.Result, error) {
	return c.updateResult(ctx, "/v1/update/commit", nil)
}

// UpdateRollback rolls back a standalone install.
func (c *AdminClient) UpdateRollback(ctx context.Context) (deploy.Result, error) {
	return c.updateResult(ctx, "/v1/update/rollback", nil)
}

func (c *AdminClient) updateResult(ctx context.Context, path string, body io.Reader) (deploy.Result, error) {
	data, err := c.doStream(ctx, http.MethodPost, path, body)
	if err != nil {
		return deploy.Result{}, err
	}
	var res deploy.Result
	if err := json.Unmarshal(data, &res); err != nil {
		return deploy.Result{}, fmt.Errorf("admin: decode update result: %w", err)
	}
	return res, nil
}
