package devstack

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"
)

// Limits of the demo backend.
const (
	// maxDownload is the largest /download: enough for the proxied 1 GiB
	// streaming test, with room.
	maxDownload = 4 << 30
	// downloadChunk is what one write of /download sends.
	downloadChunk = 64 << 10
	// maxEchoMessage bounds one WebSocket message read.
	maxEchoMessage = 1 << 20
)

// demoApps are the apps the JSON API lists.
var demoApps = []string{"sales", "operations"}

func (e *engine) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", e.servePage)
	mux.HandleFunc("GET /api/v1/whoami", e.serveJSON)
	mux.HandleFunc("GET /api/v1/apps", e.serveApps)
	mux.HandleFunc("GET /api/v1/apps/{app}", e.serveJSON)
	mux.HandleFunc("POST /api/v1/apps/{app}/reload", e.serveReload)
	mux.HandleFunc("GET /api/v1/apps/{app}/ws", e.serveEcho)
	mux.HandleFunc("GET /download", serveDownload)
}

// identityOr writes the refusal of a request whose identity token does
// not verify (401) or cannot be checked (503) and reports false.
func (e *engine) identityOr(w http.ResponseWriter, r *http.Request) (received, bool) {
	rec, err := e.identity(r)
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, errNoJWKS) {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return rec, false
	}
	rec.App = r.PathValue("app")
	return rec, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// serveJSON echoes the identity the request brought.
func (e *engine) serveJSON(w http.ResponseWriter, r *http.Request) {
	if rec, ok := e.identityOr(w, r); ok {
		writeJSON(w, http.StatusOK, rec)
	}
}

// serveReload pretends to reload an app: it answers who asked.
func (e *engine) serveReload(w http.ResponseWriter, r *http.Request) {
	rec, ok := e.identityOr(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Reloaded bool     `json:"reloaded"`
		Identity received `json:"identity"`
	}{true, rec})
}

func (e *engine) serveApps(w http.ResponseWriter, r *http.Request) {
	rec, ok := e.identityOr(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Apps     []string `json:"apps"`
		Identity received `json:"identity"`
	}{demoApps, rec})
}

// servePage shows the identity as a small HTML page. It is written with
// html.EscapeString rather than html/template, which the linker cannot
// trim (see cmd/edgefort/deps_test.go).
func (e *engine) servePage(w http.ResponseWriter, r *http.Request) {
	rec, ok := e.identityOr(w, r)
	if !ok {
		return
	}
	var b strings.Builder
	row := func(k, v string) {
		b.WriteString("<tr><th>" + html.EscapeString(k) + "</th><td>" + html.EscapeString(v) + "</td></tr>\n")
	}
	b.WriteString(`<!doctype html>
<html><head><meta charset="utf-8"><title>local engine</title></head>
<body>
<h1>local engine</h1>
<p>The edgefort dev environment's demo backend. This request reached it as:</p>
<table>
`)
	row("user", rec.Headers.User)
	row("directory", rec.Headers.Directory)
	row("groups", rec.Headers.Groups)
	if j := rec.JWT; j != nil {
		if j.Verified {
			row("identity token", "verified, kid "+j.KeyID)
		} else {
			row("identity token", j.Note)
		}
		for _, k := range slices.Sorted(maps.Keys(j.Claims)) {
			row("claim "+k, claimText(j.Claims[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(rec.Forwarded)) {
		row(k, rec.Forwarded[k])
	}
	b.WriteString(`</table>
<p>JSON: <a href="api/v1/whoami">api/v1/whoami</a>, <a href="api/v1/apps">api/v1/apps</a>.</p>
</body></html>
`)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, b.String())
}

// hello is the WebSocket echo's first message.
type hello struct {
	Hello    string   `json:"hello"`
	Identity received `json:"identity"`
}

// serveEcho is a WebSocket echo: a JSON hello with the identity the
// upgrade request brought, then every message back as it came.
func (e *engine) serveEcho(w http.ResponseWriter, r *http.Request) {
	rec, ok := e.identityOr(w, r)
	if !ok {
		return
	}
	up := websocket.Upgrader{CheckOrigin: sameOrigin}
	conn, err := up.Upgrade(w, r, nil) // on failure it has answered
	if err != nil {
		return
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		conn.Close()
		return
	}
	e.sockets[conn] = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.sockets, conn)
		e.mu.Unlock()
		conn.Close()
	}()
	conn.SetReadLimit(maxEchoMessage)
	if err := conn.WriteJSON(hello{Hello: "local engine", Identity: rec}); err != nil {
		return
	}
	for {
		kind, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if err := conn.WriteMessage(kind, msg); err != nil {
			return
		}
	}
}

// sameOrigin admits a browser's WebSocket only from the page's own site:
// the Host it asked for, or the one the proxy says it asked for.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host) || strings.EqualFold(u.Host, r.Header.Get("X-Forwarded-Host"))
}

// serveDownload streams ?bytes=N bytes, byte i being i mod 256, made as
// they are written: nothing is buffered beyond one chunk.
func serveDownload(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
	if err != nil || n < 0 || n > maxDownload {
		http.Error(w, fmt.Sprintf("bytes=%q: want a whole number from 0 to %d (4 GiB)", r.URL.Query().Get("bytes"), int64(maxDownload)), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	var chunk [downloadChunk]byte // a multiple of 256, so every chunk starts at byte 0
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for n > 0 {
		m := min(n, downloadChunk)
		if _, err := w.Write(chunk[:m]); err != nil {
			return // the client went away
		}
		n -= m
	}
}

// claimText shows a claim as it was sent: JSON numbers (exp, iat, nbf)
// decode as float64, which fmt would print as 1.79e+09.
func claimText(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
