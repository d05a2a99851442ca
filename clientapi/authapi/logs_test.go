package authapi

import (
	"strings"
	"testing"
)

// TestNoTokensInLogs runs the ticket and session flows, refusals included,
// and finds no ticket or session id in what the API logged.
func TestNoTokensInLogs(t *testing.T) {
	r := newRig(t, nil)
	tsol := ticketSolution(t, r, nil)
	ssol := sessionSolution(t, r, "hub")
	var secrets []string
	for range 3 {
		tk := r.ticketFor(t, "/apps", "")
		secrets = append(secrets, tk.Ticket)
		tsol.Authenticate(browse("https://hub.example/?qlikTicket=" + tk.Ticket))
		tsol.Authenticate(browse("https://hub.example/?qlikTicket=" + tk.Ticket)) // reused
		s := r.register(t, "", "")
		secrets = append(secrets, s.SessionID)
		ssol.Authenticate(withCookie(s.SessionID))
		r.call(t, r.client, "GET", "/v1/sessions/"+s.SessionID, nil, nil)
		r.call(t, r.client, "DELETE", "/v1/sessions/"+s.SessionID, nil, nil)
		r.call(t, r.client, "GET", "/v1/sessions/"+s.SessionID, nil, nil)
	}
	own := r.register(t, "portal-chosen-id-0123456789abcdef", "")
	secrets = append(secrets, own.SessionID)
	logs := r.logs.String()
	if !strings.Contains(logs, "authentication API call") {
		t.Fatalf("no API call logged:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs carry a token %q:\n%s", s, logs)
		}
	}
}
