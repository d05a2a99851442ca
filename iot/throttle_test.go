package iot

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgefort/edgefort/internal/prom"
	"github.com/edgefort/edgefort/internal/testkit"
)

// TestLinkTellsThrottledConnects runs the link against a server that
// answers every attempt the same way, over real TLS and WebSocket, and
// checks which answers count as the service throttling the connect
// (ErrThrottled, backing off further) and which do not.
func TestLinkTellsThrottledConnects(t *testing.T) {
	upgrader := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	// afterConnect upgrades, reads the CONNECT frame, then sends reply
	// (none: hang up).
	afterConnect := func(reply []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			ws, err := upgrader.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer ws.Close()
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
			if reply != nil {
				ws.WriteMessage(websocket.BinaryMessage, reply)
				ws.ReadMessage() // until the client closes
			}
		}
	}
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { http.Error(w, http.StatusText(code), code) }
	}
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		throttled bool
		errText   string
	}{
		{"429 on the upgrade", status(http.StatusTooManyRequests), true, "429"},
		{"503 on the upgrade", status(http.StatusServiceUnavailable), true, "503"},
		{"403 on the upgrade", status(http.StatusForbidden), false, "403"},
		{"CONNACK server unavailable", afterConnect([]byte{0x20, 0x02, 0x00, 0x03}), true, "server Unavailable"},
		{"CONNACK not authorized", afterConnect([]byte{0x20, 0x02, 0x00, 0x05}), false, "not Authorized"},
		{"hang-up before CONNACK", afterConnect(nil), true, "network Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int32
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				attempts.Add(1)
				tt.handler(w, r)
			}))
			serverTLS, clientTLS := selfSignedTLS(t)
			srv.TLS = serverTLS
			srv.StartTLS()
			defer srv.Close()

			reg := prom.NewRegistry()
			l, err := New(Options{
				Host:             srv.Listener.Addr().String(),
				Region:           "eu-west-1",
				ThingName:        testThing,
				Credentials:      &countingCreds{},
				TLS:              clientTLS,
				Presign:          (&presignStub{}).presign,
				ReconnectInitial: 50 * time.Millisecond,
				ReconnectMax:     200 * time.Millisecond,
				ConnectInterval:  time.Millisecond,
				ConnectTimeout:   5 * time.Second,
				Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
				Registerer:       reg,
			})
			if err != nil {
				t.Fatal(err)
			}
			runLink(t, l)
			// The link counts an attempt before it starts the next one.
			testkit.WaitFor(t, "three attempts", func() bool { return attempts.Load() >= 3 })
			st := l.Status()
			if got := st.Throttled > 0; got != tt.throttled {
				t.Errorf("throttled attempts = %d after %d attempts, want throttled %v", st.Throttled, attempts.Load(), tt.throttled)
			}
			if tt.throttled && st.Throttled < 2 {
				t.Errorf("throttled attempts = %d, want every attempt counted", st.Throttled)
			}
			if got := strings.Contains(st.LastError, ErrThrottled.Error()); got != tt.throttled {
				t.Errorf("last error %q: throttled %v, want %v", st.LastError, got, tt.throttled)
			}
			if got := int(counterValue(t, reg, "edgefort_iot_connects_throttled_total", "")); got < st.Throttled || (got > 0) != tt.throttled {
				t.Errorf("edgefort_iot_connects_throttled_total = %d, status %d, want throttled %v", got, st.Throttled, tt.throttled)
			}
			if !strings.Contains(st.LastError, tt.errText) {
				t.Errorf("last error %q, want it to name %q", st.LastError, tt.errText)
			}
		})
	}
}
