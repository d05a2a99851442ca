package iot

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestDialWebSocketFrames checks that DialWebSocket offers "mqtt", joins
// binary frames into one stream (a packet may span frames, a frame may
// hold several), skips text frames, writes binary frames, and reports a
// refused upgrade with its HTTP status.
func TestDialWebSocketFrames(t *testing.T) {
	got := make(chan []byte, 1)
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("sig") != "ok" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		if ws.Subprotocol() != "mqtt" {
			t.Errorf("subprotocol = %q, want mqtt", ws.Subprotocol())
		}
		for _, f := range []struct {
			typ  int
			data string
		}{
			{websocket.BinaryMessage, "ab"},
			{websocket.TextMessage, "ignored"},
			{websocket.BinaryMessage, ""},
			{websocket.BinaryMessage, "cdef"},
		} {
			if err := ws.WriteMessage(f.typ, []byte(f.data)); err != nil {
				t.Error(err)
				return
			}
		}
		typ, p, err := ws.ReadMessage()
		if err != nil || typ != websocket.BinaryMessage {
			t.Errorf("server read = %d, %v; want a binary frame", typ, err)
		}
		got <- p
	}))
	defer srv.Close()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/mqtt"

	if _, err := DialWebSocket(context.Background(), wsURL+"?sig=bad", nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("dial with a bad signature = %v, want an error naming 403", err)
	}

	c, err := DialWebSocket(context.Background(), wsURL+"?sig=ok", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "abcdef" {
		t.Errorf("read %q, want %q", buf, "abcdef")
	}
	if n, err := c.Write([]byte{0x30, 0x02, 'h', 'i'}); n != 4 || err != nil {
		t.Fatalf("write = %d, %v", n, err)
	}
	if p := <-got; !bytes.Equal(p, []byte{0x30, 0x02, 'h', 'i'}) {
		t.Errorf("server got %q", p)
	}
}
