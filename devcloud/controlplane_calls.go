package devcloud

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"

	"github.com/edgefort/edgefort/cloudclient/api"
)

// The device calls: authorization, IoT credentials and reports.

func (c *ControlPlane) decide(req api.AuthorizeRequest) api.Decision {
	d := c.opts.Policy.Decide(req)
	c.stats.checks.Add(1)
	if d.Allow {
		c.stats.allowed.Add(1)
	} else {
		c.stats.denied.Add(1)
	}
	return d
}

// checkAuthorizeRequest reports what is missing from a check, or "".
func checkAuthorizeRequest(req api.AuthorizeRequest) string {
	switch {
	case req.User.ID == "":
		return "user.id missing"
	case req.Action == "":
		return "action missing"
	case req.Resource.Type != "app" && req.Resource.Type != "space":
		return fmt.Sprintf("resource.type %q: want app or space", req.Resource.Type)
	case req.Resource.ID == "":
		return "resource.id missing"
	}
	return ""
}

func (c *ControlPlane) handleAuthorize(w http.ResponseWriter, r *http.Request, dev *EnrolledDevice) {
	c.stats.authorizeCalls.Add(1)
	var req api.AuthorizeRequest
	if !c.decode(w, r, &req) {
		return
	}
	if msg := checkAuthorizeRequest(req); msg != "" {
		c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "%s", msg)
		return
	}
	d := c.decide(req)
	c.log.Debug("authorization decided", "device", dev.ID, "user", req.User.ID, "action", req.Action, "allow", d.Allow, "reason", d.Reason)
	writeJSON(w, http.StatusOK, d)
}

func (c *ControlPlane) handleAuthorizeBatch(w http.ResponseWriter, r *http.Request, dev *EnrolledDevice) {
	c.stats.batchCalls.Add(1)
	var req api.BatchAuthorizeRequest
	if !c.decode(w, r, &req) {
		return
	}
	switch n := len(req.Checks); {
	case n == 0:
		c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "no checks")
		return
	case n > cpMaxChecks:
		c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "%d checks, more than %d", n, cpMaxChecks)
		return
	}
	for i, chk := range req.Checks {
		if msg := checkAuthorizeRequest(chk); msg != "" {
			c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "checks[%d]: %s", i, msg)
			return
		}
	}
	resp := api.BatchAuthorizeResponse{Decisions: make([]api.Decision, len(req.Checks))}
	for i, chk := range req.Checks {
		resp.Decisions[i] = c.decide(chk)
	}
	c.log.Debug("authorization batch decided", "device", dev.ID, "checks", len(req.Checks))
	writeJSON(w, http.StatusOK, resp)
}

// issuedCredentials are IoT credentials and the device they were issued
// to.
type issuedCredentials struct {
	creds    api.IoTCredentials
	deviceID string
}

func (c *ControlPlane) handleIoTCredentials(w http.ResponseWriter, r *http.Request, dev *EnrolledDevice) {
	now := c.now()
	creds := api.IoTCredentials{
		AccessKeyID:     "ASIA" + randomUpperAlnum(16),
		SecretAccessKey: randomBase64(30),
		SessionToken:    randomBase64(96),
		Expiration:      now.Add(c.opts.CredentialsLifetime).UTC().Truncate(1e9),
	}
	c.mu.Lock()
	for k, ic := range c.creds {
		if now.After(ic.creds.Expiration) {
			delete(c.creds, k)
		}
	}
	c.creds[creds.AccessKeyID] = issuedCredentials{creds, dev.ID}
	c.mu.Unlock()
	c.stats.iotCredentials.Add(1)
	c.log.Info("iot credentials issued", "device", dev.ID, "access_key_id", creds.AccessKeyID, "expiration", creds.Expiration)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, creds)
}

// LookupIoTCredentials finds credentials by access key ID, with the device
// they were issued to; false when unknown or expired. The devcloud broker
// uses it to check SigV4 signatures.
func (c *ControlPlane) LookupIoTCredentials(accessKeyID string) (api.IoTCredentials, string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ic, ok := c.creds[accessKeyID]
	if !ok || c.now().After(ic.creds.Expiration) {
		return api.IoTCredentials{}, "", false
	}
	return ic.creds, ic.deviceID, true
}

func (c *ControlPlane) handleReports(w http.ResponseWriter, r *http.Request, dev *EnrolledDevice) {
	var req api.ReportsRequest
	if !c.decode(w, r, &req) {
		return
	}
	switch n := len(req.Reports); {
	case n == 0:
		c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "no reports")
		return
	case n > cpMaxReports:
		c.fail(w, r, http.StatusBadRequest, api.CodeBadRequest, "%d reports, more than %d", n, cpMaxReports)
		return
	}
	resp := api.ReportsResponse{Acknowledged: []string{}}
	acked := make(map[string]bool)
	var recorded, rejected int64

	c.mu.Lock()
	seen := c.deliveries[dev.ID]
	if seen == nil {
		seen = make(map[string]int)
		c.deliveries[dev.ID] = seen
	}
	for _, rep := range req.Reports {
		if reason := reportProblem(rep); reason != "" {
			resp.Rejected = append(resp.Rejected, api.Rejection{IdempotencyKey: rep.IdempotencyKey, Reason: reason})
			rejected++
			continue
		}
		if seen[rep.IdempotencyKey] == 0 {
			c.reports[dev.ID] = append(c.reports[dev.ID], rep)
			recorded++
		}
		seen[rep.IdempotencyKey]++
		if !acked[rep.IdempotencyKey] {
			acked[rep.IdempotencyKey] = true
			resp.Acknowledged = append(resp.Acknowledged, rep.IdempotencyKey)
		}
	}
	c.mu.Unlock()

	c.stats.reportCalls.Add(1)
	c.stats.delivered.Add(int64(len(req.Reports)) - rejected)
	c.stats.recorded.Add(recorded)
	c.stats.rejected.Add(rejected)
	c.log.Debug("reports received", "device", dev.ID, "reports", len(req.Reports), "recorded", recorded, "rejected", rejected)
	writeJSON(w, http.StatusOK, resp)
}

// reportProblem says why a report is refused for good, or "".
func reportProblem(r api.Report) string {
	switch {
	case r.IdempotencyKey == "":
		return "idempotency_key missing"
	case len(r.IdempotencyKey) > 200:
		return "idempotency_key over 200 bytes"
	case r.Stream == "":
		return "stream missing"
	case r.Type == "":
		return "type missing"
	case r.Time.IsZero():
		return "time missing"
	}
	return ""
}

// Reports returns the distinct reports a device delivered, in arrival
// order.
func (c *ControlPlane) Reports(deviceID string) []api.Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.reports[deviceID])
}

// Deliveries counts how many times a device delivered the report with this
// key (duplicates included); 0 when never.
func (c *ControlPlane) Deliveries(deviceID, key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deliveries[deviceID][key]
}

const upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func randomUpperAlnum(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = upperAlnum[int(b[i])%len(upperAlnum)] // slight bias; fine for dev credentials
	}
	return string(b)
}

func randomBase64(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
