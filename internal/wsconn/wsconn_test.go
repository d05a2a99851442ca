package wsconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type frame struct {
	typ  int
	data string
}

// pair returns a Conn over a real WebSocket to an httptest server, and the
// server's end, which the test drives with gorilla directly.
func pair(t *testing.T, opts Options) (*Conn, *websocket.Conn) {
	t.Helper()
	srvSide := make(chan *websocket.Conn, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		srvSide <- ws
	}))
	t.Cleanup(srv.Close)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := New(ws, opts)
	s := <-srvSide
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

func TestRead(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		frames  []frame
		close   bool // the server sends a close message after the frames
		want    string
		wantErr error
	}{
		{"messages join into one stream", Options{},
			[]frame{{websocket.BinaryMessage, "ab"}, {websocket.BinaryMessage, ""}, {websocket.BinaryMessage, "cdef"}},
			true, "abcdef", io.EOF},
		{"text refused by default", Options{},
			[]frame{{websocket.BinaryMessage, "ab"}, {websocket.TextMessage, "hello"}, {websocket.BinaryMessage, "cd"}},
			false, "ab", ErrNotBinary},
		{"text skipped when asked", Options{SkipNonBinary: true},
			[]frame{{websocket.BinaryMessage, "ab"}, {websocket.TextMessage, "hello"}, {websocket.BinaryMessage, "cd"}},
			true, "abcd", io.EOF},
		{"close message reads as EOF", Options{}, nil, true, "", io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := pair(t, tt.opts)
			for _, f := range tt.frames {
				if err := s.WriteMessage(f.typ, []byte(f.data)); err != nil {
					t.Fatal(err)
				}
			}
			if tt.close {
				if err := s.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")); err != nil {
					t.Fatal(err)
				}
			}
			var got []byte
			buf := make([]byte, 3) // smaller than a message: reads split them
			var err error
			for {
				var n int
				n, err = c.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			if string(got) != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("read %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestWriteSendsOneBinaryMessageEach(t *testing.T) {
	c, s := pair(t, Options{})
	var wg sync.WaitGroup
	const writers = 8
	for i := range writers {
		wg.Go(func() {
			p := bytes.Repeat([]byte{byte('a' + i)}, 1000)
			if n, err := c.Write(p); n != len(p) || err != nil {
				t.Errorf("write %d = %d, %v", i, n, err)
			}
		})
	}
	seen := map[byte]bool{}
	for range writers {
		typ, p, err := s.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if typ != websocket.BinaryMessage || len(p) != 1000 || bytes.Count(p, p[:1]) != 1000 {
			t.Fatalf("server got a type %d message of %d bytes, want 1000 equal bytes in binary", typ, len(p))
		}
		seen[p[0]] = true
	}
	wg.Wait()
	if len(seen) != writers {
		t.Errorf("got %d distinct messages, want %d", len(seen), writers)
	}
}

func TestCloseSendsCloseMessage(t *testing.T) {
	c, s := pair(t, Options{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("server read after Close = %v, want a normal close", err)
	}
}

func TestDeadlines(t *testing.T) {
	past := time.Now().Add(-time.Second)
	tests := []struct {
		name string
		set  func(c *Conn, t time.Time) error
		op   func(c *Conn) error
	}{
		{"read deadline cuts a read", (*Conn).SetReadDeadline, func(c *Conn) error {
			_, err := c.Read(make([]byte, 1))
			return err
		}},
		{"write deadline fails a write", (*Conn).SetWriteDeadline, func(c *Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		}},
		{"deadline does both (read)", (*Conn).SetDeadline, func(c *Conn) error {
			_, err := c.Read(make([]byte, 1))
			return err
		}},
		{"deadline does both (write)", (*Conn).SetDeadline, func(c *Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := pair(t, Options{})
			if err := tt.set(c, past); err != nil {
				t.Fatal(err)
			}
			var ne net.Error
			if err := tt.op(c); !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("after a past deadline: %v, want a timeout", err)
			}
		})
	}
}

func TestClearedWriteDeadlineWrites(t *testing.T) {
	c, s := pair(t, Options{})
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	c.SetWriteDeadline(time.Time{})
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("write after clearing the deadline: %v", err)
	}
	if _, p, err := s.ReadMessage(); err != nil || string(p) != "x" {
		t.Errorf("server read %q, %v", p, err)
	}
}
