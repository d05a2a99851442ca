package cloudclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/httpbody"
)

// Authorize asks whether r.User may do r.Action on r.Resource. It is a read,
// so it is retried while the control plane is unavailable.
func (c *Client) Authorize(ctx context.Context, r api.AuthorizeRequest) (api.Decision, error) {
	var d api.Decision
	err := c.do(ctx, call{
		name: "authorize", method: http.MethodPost, path: api.PathAuthorize,
		body: r, device: true, retry: true, out: &d, limit: maxDecisionReply,
		check: func() error { return httpbody.CheckLen("reason", d.Reason, maxReason) },
	})
	return d, err
}

// AuthorizeBatch asks several questions in one call; the decisions are in
// the order of rs.
func (c *Client) AuthorizeBatch(ctx context.Context, rs []api.AuthorizeRequest) ([]api.Decision, error) {
	var resp api.BatchAuthorizeResponse
	err := c.do(ctx, call{
		name: "authorize batch", method: http.MethodPost, path: api.PathAuthorizeBatch,
		body: api.BatchAuthorizeRequest{Checks: rs}, device: true, retry: true, out: &resp, limit: maxBatchReply,
		check: func() error {
			var errs []error
			for i, d := range resp.Decisions {
				errs = append(errs, httpbody.CheckLen(fmt.Sprintf("decisions[%d].reason", i), d.Reason, maxReason))
			}
			return errors.Join(errs...)
		},
	})
	if err != nil {
		return nil, err
	}
	if len(resp.Decisions) != len(rs) {
		return nil, fmt.Errorf("cloudclient: authorize batch: %w", &ResponseError{
			Status:  http.StatusOK,
			Message: fmt.Sprintf("%d decisions for %d checks", len(resp.Decisions), len(rs)),
		})
	}
	return resp.Decisions, nil
}

// IoTCredentials fetches temporary AWS credentials for the event link.
func (c *Client) IoTCredentials(ctx context.Context) (api.IoTCredentials, error) {
	var cr api.IoTCredentials
	err := c.do(ctx, call{
		name: "iot credentials", method: http.MethodGet, path: api.DevicePath(api.PathIoTCredentials, c.deviceID),
		device: true, retry: true, out: &cr, limit: maxCredentialsReply,
	})
	return cr, err
}

// SendReports delivers a batch of reports. Every report needs an
// idempotency key, which makes the call safe to retry: the server records
// each key once and acknowledges it again on a resend.
func (c *Client) SendReports(ctx context.Context, rs []api.Report) (api.ReportsResponse, error) {
	for i, r := range rs {
		if r.IdempotencyKey == "" {
			return api.ReportsResponse{}, fmt.Errorf("cloudclient: send reports: report %d has no idempotency key", i)
		}
	}
	var resp api.ReportsResponse
	err := c.do(ctx, call{
		name: "send reports", method: http.MethodPost, path: api.DevicePath(api.PathReports, c.deviceID),
		body: api.ReportsRequest{Reports: rs}, device: true, retry: true, out: &resp, limit: maxReportsReply,
		check: func() error { return checkReportsResponse(&resp) },
	})
	return resp, err
}

// JWKS fetches the JSON Web Key Set that signs the user tokens clients
// present to the node, as the raw document. It needs no device identity.
func (c *Client) JWKS(ctx context.Context) ([]byte, error) {
	var b []byte
	err := c.do(ctx, call{name: "jwks", method: http.MethodGet, path: api.PathJWKS, retry: true, out: &b, limit: maxJWKSReply})
	if err == nil && len(b) == 0 {
		err = errors.New("cloudclient: jwks: empty answer")
	}
	return b, err
}

// checkReportsResponse checks the lengths of the keys and reasons the
// outbox keeps or logs.
func checkReportsResponse(r *api.ReportsResponse) error {
	var errs []error
	for i, k := range r.Acknowledged {
		errs = append(errs, httpbody.CheckLen(fmt.Sprintf("acknowledged[%d]", i), k, maxReportKey))
	}
	for i, rj := range r.Rejected {
		errs = append(errs,
			httpbody.CheckLen(fmt.Sprintf("rejected[%d].idempotency_key", i), rj.IdempotencyKey, maxReportKey),
			httpbody.CheckLen(fmt.Sprintf("rejected[%d].reason", i), rj.Reason, maxReason))
	}
	return errors.Join(errs...)
}
