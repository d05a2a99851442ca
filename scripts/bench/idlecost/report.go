package main

import (
	"fmt"
	"io"
	"time"

	"github.com/edgefort/edgefort/devcloud"
	"github.com/edgefort/edgefort/iot"
)

// row is one source of traffic on a link: what one occurrence costs the
// node, seen from the node (sent = what the server read), and how often
// it happens at the defaults.
type row struct {
	link, what, how string
	perHour         float64 // occurrences per hour
	sent, recv      float64 // messages per occurrence
	bytesSent       float64 // TCP payload bytes per occurrence
	bytesRecv       float64
}

func (r row) hourly() (sent, recv, bytesSent, bytesRecv float64) {
	return r.perHour * r.sent, r.perHour * r.recv, r.perHour * r.bytesSent, r.perHour * r.bytesRecv
}

// perOccurrence divides a count by n occurrences.
func perOccurrence(x devcloud.WireExchange, n int64) (sent, recv, bytesSent, bytesRecv float64) {
	if n == 0 {
		return 0, 0, 0, 0
	}
	f := float64(n)
	return float64(x.Count) / f, float64(x.Count) / f, float64(x.BytesIn) / f, float64(x.BytesOut) / f
}

func perHour(period time.Duration) float64 { return float64(time.Hour) / float64(period) }

// rows derives the table from the two runs.
func rows(prod, scaled *result) []row {
	var out []row
	out = append(out, eventLinkRows(prod, scaled)...)
	out = append(out, updateRows(prod, scaled)...)
	out = append(out, cloudRows(prod)...)
	return out
}

func eventLinkRows(prod, scaled *result) []row {
	const link = devcloud.WireEventLink
	s := scaled.window[link]
	pings := s.PacketsIn["Pingreq"]
	in, out := s.Messages()
	ka := prod.cfg.IoT.KeepAlive
	r := []row{{link: link, what: fmt.Sprintf("MQTT keep-alive (PINGREQ, PINGRESP), every %s", ka),
		how: fmt.Sprintf("scaled run: %d pings at %s", pings, scaled.cfg.IoT.KeepAlive), perHour: perHour(ka)}}
	if pings > 0 {
		r[0].sent, r[0].recv = float64(in)/float64(pings), float64(out)/float64(pings)
		r[0].bytesSent, r[0].bytesRecv = float64(s.BytesIn)/float64(pings), float64(s.BytesOut)/float64(pings)
	}
	if in != pings || out != s.PacketsOut["Pingresp"] {
		r[0].how += fmt.Sprintf("; the window held other packets too (%v in, %v out), counted with the pings", s.PacketsIn, s.PacketsOut)
	}
	// A proactive reconnect: a new connection as at start-up, and the
	// old one's DISCONNECT.
	st := prod.startup[link]
	sin, sout := st.Messages()
	r = append(r, row{link: link, what: fmt.Sprintf("reconnect before AWS's 24 h limit, every %s (TLS, SigV4 upgrade, CONNECT, SUBSCRIBE, Jobs, Shadow)", iot.DefaultMaxConnectionAge),
		how: "start-up connection, +1 DISCONNECT", perHour: perHour(iot.DefaultMaxConnectionAge),
		sent: float64(sin + 1), recv: float64(sout), bytesSent: float64(st.BytesIn), bytesRecv: float64(st.BytesOut)})
	return append(r, otherRow(link, prod))
}

// otherRow is whatever the production window saw beyond the keep-alive:
// periodic traffic this program does not know of.
func otherRow(link string, prod *result) row {
	w := prod.window[link]
	in, out := w.Messages()
	in -= w.PacketsIn["Pingreq"]
	out -= w.PacketsOut["Pingresp"]
	r := row{link: link, what: "anything else periodic",
		how: fmt.Sprintf("production run, %s", prod.elapsed.Round(time.Second)), perHour: perHour(prod.elapsed), sent: float64(in), recv: float64(out)}
	if in+out > 0 {
		// Bytes only when there were messages: the bytes of an
		// idle-connection close (the update channel's, 90 s after its
		// last request) belong to the connection rows.
		x := w.Exchanges[devcloud.WireNoRequest]
		r.bytesSent, r.bytesRecv = float64(w.BytesIn-x.BytesIn), float64(w.BytesOut-x.BytesOut)
		if link == devcloud.WireEventLink {
			r.what += fmt.Sprintf(" (%v in, %v out)", w.PacketsIn, w.PacketsOut)
		} else {
			r.what += fmt.Sprintf(" (%v)", w.Exchanges)
		}
	}
	return r
}

func updateRows(prod, scaled *result) []row {
	const link = devcloud.WireUpdateChannel
	s := scaled.window[link]
	u := prod.cfg.Updates
	var r []row
	ep, x := endpoint(s, "/deployments/next")
	poll := row{link: link, what: fmt.Sprintf("deployment poll (%s), every %s", ep, u.PollInterval),
		how: fmt.Sprintf("scaled run: %d polls at %s", x.Count, scaled.cfg.Updates.PollInterval), perHour: perHour(u.PollInterval)}
	poll.sent, poll.recv, poll.bytesSent, poll.bytesRecv = perOccurrence(x, x.Count)
	r = append(r, poll)
	// Each poll finds the previous connection closed (the agent keeps an
	// idle one 90 s): a TLS handshake with the device certificate, and the
	// close, per poll.
	conn := row{link: link, what: "TLS connection per poll (mutual TLS handshake, close)",
		how: fmt.Sprintf("scaled run: %d connections", s.Conns), perHour: perHour(u.PollInterval)}
	if s.Conns > 0 {
		h := s.Exchanges[devcloud.WireNoRequest]
		conn.bytesSent, conn.bytesRecv = float64(h.BytesIn)/float64(s.Conns), float64(h.BytesOut)/float64(s.Conns)
	}
	r = append(r, conn)
	ep, x = endpoint(s, "/inventory/device/attributes")
	inv := row{link: link, what: fmt.Sprintf("inventory (%s), every %s", ep, u.InventoryInterval),
		how: fmt.Sprintf("scaled run: %d at %s", x.Count, scaled.cfg.Updates.InventoryInterval), perHour: perHour(u.InventoryInterval)}
	inv.sent, inv.recv, inv.bytesSent, inv.bytesRecv = perOccurrence(x, x.Count)
	r = append(r, inv)
	ep, x = endpoint(prod.startup[link], "/authentication/auth_requests")
	auth := row{link: link, what: fmt.Sprintf("device token renewal (%s), every %s", ep, devcloud.DefaultMenderJWTLifetime),
		how: "start-up request", perHour: perHour(devcloud.DefaultMenderJWTLifetime)}
	auth.sent, auth.recv, auth.bytesSent, auth.bytesRecv = perOccurrence(x, x.Count)
	r = append(r, auth)
	return append(r, otherRow(link, prod))
}

// cloudRows: an idle node calls the control plane when the event link
// reconnects (an access token, then IoT credentials; both have expired by
// then), on its own TLS connection.
func cloudRows(prod *result) []row {
	const link = devcloud.WireCloudCalls
	st := prod.startup[link]
	in, out := st.Messages()
	// The connection's close, once idle, falls in the window.
	closed := prod.window[link].Exchanges[devcloud.WireNoRequest]
	r := row{link: link, what: fmt.Sprintf("token and IoT credentials at each event-link reconnect, every %s (%s)", iot.DefaultMaxConnectionAge, endpoints(st)),
		how: "start-up calls, TLS and close included", perHour: perHour(iot.DefaultMaxConnectionAge),
		sent: float64(in), recv: float64(out), bytesSent: float64(st.BytesIn + closed.BytesIn), bytesRecv: float64(st.BytesOut + closed.BytesOut)}
	return []row{r, otherRow(link, prod)}
}

func endpoints(s devcloud.WireStats) string {
	var eps string
	for _, ep := range sortedKeys(s.Exchanges) {
		if ep != devcloud.WireNoRequest {
			eps += fmt.Sprintf("%s%s ×%d", map[bool]string{true: "", false: "; "}[eps == ""], ep, s.Exchanges[ep].Count)
		}
	}
	return eps
}

func report(w io.Writer, prod, scaled *result) {
	fmt.Fprintf(w, "# production run: %s after start-up; scaled run: %s (poll %s, inventory %s, keep-alive %s)\n",
		prod.elapsed.Round(time.Second), scaled.elapsed.Round(time.Second),
		scaled.cfg.Updates.PollInterval, scaled.cfg.Updates.InventoryInterval, scaled.cfg.IoT.KeepAlive)
	fmt.Fprintf(w, "# defaults: keep-alive %s, poll %s, inventory %s, max connection age %s\n",
		prod.cfg.IoT.KeepAlive, prod.cfg.Updates.PollInterval, prod.cfg.Updates.InventoryInterval, iot.DefaultMaxConnectionAge)
	all := rows(prod, scaled)
	fmt.Fprintf(w, "\n%-15s %9s %9s %11s %11s  %s\n", "link", "msgs/h ↑", "msgs/h ↓", "bytes/h ↑", "bytes/h ↓", "what (how measured); per occurrence ↑/↓ msgs, bytes")
	type sum struct{ sent, recv, bs, br float64 }
	totals := map[string]*sum{}
	var order []string
	for _, r := range all {
		s, rc, bs, br := r.hourly()
		fmt.Fprintf(w, "%-15s %9.2f %9.2f %11.0f %11.0f  %s (%s); %.1f/%.1f, %.0f/%.0f B\n", r.link, s, rc, bs, br, r.what, r.how, r.sent, r.recv, r.bytesSent, r.bytesRecv)
		t := totals[r.link]
		if t == nil {
			t = &sum{}
			totals[r.link] = t
			order = append(order, r.link)
		}
		t.sent, t.recv, t.bs, t.br = t.sent+s, t.recv+rc, t.bs+bs, t.br+br
	}
	fmt.Fprintf(w, "\n%-15s %9s %9s %11s %11s %9s  %s\n", "per link", "msgs/h ↑", "msgs/h ↓", "bytes/h ↑", "bytes/h ↓", "msgs/min", "TCP segments/h ↑/↓ (all, with ACKs and probes)")
	var all4 sum
	for _, link := range order {
		t := totals[link]
		in, out := segments(link, prod, scaled)
		fmt.Fprintf(w, "%-15s %9.2f %9.2f %11.0f %11.0f %9.3f  %.0f/%.0f\n", link, t.sent, t.recv, t.bs, t.br, (t.sent+t.recv)/60, in, out)
		all4.sent, all4.recv, all4.bs, all4.br = all4.sent+t.sent, all4.recv+t.recv, all4.bs+t.bs, all4.br+t.br
	}
	fmt.Fprintf(w, "%-15s %9.2f %9.2f %11.0f %11.0f %9.3f  (goal: ≤ 1 message per minute)\n", "node", all4.sent, all4.recv, all4.bs, all4.br, (all4.sent+all4.recv)/60)
	// The node's total at other keep-alives: only the first row changes.
	ka := all[0]
	s0, r0, _, _ := ka.hourly()
	fmt.Fprintf(w, "# the node at another keep-alive (messages per minute):")
	for _, k := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute} {
		fmt.Fprintf(w, " %s %.2f;", k, (all4.sent+all4.recv-s0-r0+perHour(k)*(ka.sent+ka.recv))/60)
	}
	fmt.Fprintln(w)
	check(w, prod, ka)
	raw(w, prod)
	raw(w, scaled)
}

// segments estimates a link's TCP segments an hour, which the kernel
// counts per connection only: the event link's as the production window
// saw them plus a reconnect's; the update channel's per poll connection
// of the scaled run (where every other one also carries an inventory, at
// the default one in 16) times the polls; the cloud calls' start-up
// connection, to its close, per reconnect.
func segments(link string, prod, scaled *result) (in, out float64) {
	age := perHour(iot.DefaultMaxConnectionAge)
	switch link {
	case devcloud.WireEventLink:
		w, st, h := prod.window[link], prod.startup[link], perHour(prod.elapsed)
		return float64(w.SegsIn)*h + float64(st.SegsIn)*age, float64(w.SegsOut)*h + float64(st.SegsOut)*age
	case devcloud.WireUpdateChannel:
		s := scaled.window[link]
		if s.Conns == 0 {
			return 0, 0
		}
		polls := perHour(prod.cfg.Updates.PollInterval) / float64(s.Conns)
		return float64(s.SegsIn) * polls, float64(s.SegsOut) * polls
	default:
		st, w := prod.startup[link], prod.window[link]
		return float64(st.SegsIn+w.SegsIn) * age, float64(st.SegsOut+w.SegsOut) * age
	}
}

// check compares the keep-alive's hourly figure derived from the scaled
// run with the one the production run measured directly.
func check(w io.Writer, prod *result, ka row) {
	p := prod.window[devcloud.WireEventLink]
	h := perHour(prod.elapsed)
	s, rc, bs, br := ka.hourly()
	fmt.Fprintf(w, "\n# check, keep-alive per hour: derived from the scaled run %.1f/%.1f msgs, %.0f/%.0f B; measured unscaled over %s: %d pings, %.1f/%.1f msgs, %.0f/%.0f B (a window holds a whole number of pings)\n",
		s, rc, bs, br, prod.elapsed.Round(time.Second), p.PacketsIn["Pingreq"],
		float64(p.PacketsIn["Pingreq"])*h, float64(p.PacketsOut["Pingresp"])*h, float64(p.BytesIn)*h, float64(p.BytesOut)*h)
}

// raw prints what each run counted, for the record.
func raw(w io.Writer, r *result) {
	for _, phase := range []struct {
		name string
		m    map[string]devcloud.WireStats
	}{{"start-up", r.startup}, {fmt.Sprintf("window %s", r.elapsed.Round(time.Second)), r.window}} {
		fmt.Fprintf(w, "# %s run, %s:\n", r.name, phase.name)
		for _, link := range sortedKeys(phase.m) {
			s := phase.m[link]
			fmt.Fprintf(w, "#   %-15s conns %d, bytes ↑%d ↓%d, segments ↑%d ↓%d", link, s.Conns, s.BytesIn, s.BytesOut, s.SegsIn, s.SegsOut)
			if s.PacketsIn != nil || s.PacketsOut != nil {
				fmt.Fprintf(w, ", packets ↑%v ↓%v", s.PacketsIn, s.PacketsOut)
			}
			fmt.Fprintln(w)
			for _, ep := range sortedKeys(s.Exchanges) {
				x := s.Exchanges[ep]
				fmt.Fprintf(w, "#     %-70s ×%d ↑%d ↓%d B\n", ep, x.Count, x.BytesIn, x.BytesOut)
			}
		}
	}
}
