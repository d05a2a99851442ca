package session

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/testkit"
)

// clock is a settable clock for the timeouts.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var lim = Limits{IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 8 * time.Hour, MaxPerUser: 10}

func alice() auth.Identity {
	return auth.Identity{UserID: "alice", Directory: "corp", Groups: []string{"g1"}, Attributes: map[string][]string{"dept": {"x"}}, Solution: "ticket"}
}

func openStore(t *testing.T, db *store.DB, c *clock, logs *testkit.SyncBuffer) *Store {
	t.Helper()
	opts := Options{Now: c.Now}
	if logs != nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := Open(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A session survives closing and reopening the state store (a real bbolt
// file), its identity whole; its token is stored only as a hash.
func TestSessionPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	db := testkit.OpenStore(t, dir)
	s := openStore(t, db, c, nil)
	token, created, err := s.Create("hub", alice(), lim)
	if err != nil {
		t.Fatal(err)
	}
	if len(token) < 22 { // 128 bits in base64url
		t.Fatalf("token %q is shorter than 128 bits", token)
	}
	c.add(10 * time.Minute)
	if _, err := s.Lookup("hub", token); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(token)) {
		t.Fatal("the state database holds the session token itself")
	}

	db = testkit.OpenStore(t, dir)
	s = openStore(t, db, c, nil)
	got, err := s.Lookup("hub", token)
	if err != nil {
		t.Fatalf("after reopening: %v", err)
	}
	want := alice()
	want.Expires = c.Now().Add(30 * time.Minute)
	if diff := cmp.Diff(want, got.Identity); diff != "" {
		t.Errorf("identity after reopening (-want +got):\n%s", diff)
	}
	if got.CSRF != created.CSRF || got.ID != created.ID {
		t.Errorf("csrf or id changed across the reopen")
	}
	if want := created.Created.Add(10 * time.Minute); !got.LastSeen.Equal(want) {
		t.Errorf("last seen %v, want %v (written by Flush)", got.LastSeen, want)
	}
}

// A lookup marks the session used in memory only: nothing is written until
// Flush, which Run calls once per interval.
func TestLastSeenWrittenOnlyByFlush(t *testing.T) {
	c := newClock()
	db := testkit.OpenStore(t, "")
	s := openStore(t, db, c, nil)
	token, sess, err := s.Create("hub", alice(), lim)
	if err != nil {
		t.Fatal(err)
	}
	onDisk := func() time.Time {
		rec, found, err := store.Get[record](db.Bucket(BucketName), hashToken(token))
		if err != nil || !found {
			t.Fatalf("stored session: found %v, %v", found, err)
		}
		return rec.LastSeen
	}
	for range 5 {
		c.add(time.Minute)
		if _, err := s.Lookup("hub", token); err != nil {
			t.Fatal(err)
		}
	}
	if got := onDisk(); !got.Equal(sess.Created) {
		t.Fatalf("last seen on disk moved to %v before any flush", got)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := onDisk(), sess.Created.Add(5*time.Minute); !got.Equal(want) {
		t.Fatalf("last seen on disk %v after flush, want %v", got, want)
	}
}

// Idle and absolute timeouts end sessions (an injected clock, no sleeps),
// and a use within the idle timeout keeps the session alive until the
// absolute one.
func TestTimeouts(t *testing.T) {
	tests := []struct {
		name  string
		steps []time.Duration // the clock moves by each, then the session is used
		want  error           // of the last use
	}{
		{"used within idle", []time.Duration{29 * time.Minute}, nil},
		{"idle reached", []time.Duration{30 * time.Minute}, ErrExpired},
		{"kept alive by use", []time.Duration{20 * time.Minute, 20 * time.Minute, 20 * time.Minute}, nil},
		{"absolute reached although used", repeat(25*time.Minute, 8*60/25+1), ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			s := openStore(t, testkit.OpenStore(t, ""), c, nil)
			token, _, err := s.Create("hub", alice(), lim)
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range tt.steps {
				c.add(d)
				_, err = s.Lookup("hub", token)
				if i < len(tt.steps)-1 && err != nil {
					t.Fatalf("use %d: %v", i, err)
				}
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("last use: %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				if err := s.Flush(); err != nil {
					t.Fatal(err)
				}
				if n := len(s.List()); n != 0 {
					t.Errorf("%d sessions left after the sweep, want 0", n)
				}
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// Past max_per_user a login ends the user's own oldest session, nobody
// else's.
func TestPerUserBoundDropsOwnOldest(t *testing.T) {
	c := newClock()
	s := openStore(t, testkit.OpenStore(t, ""), c, nil)
	l := lim
	l.MaxPerUser = 2
	bob := auth.Identity{UserID: "bob", Directory: "corp"}
	bobToken, _, err := s.Create("hub", bob, l)
	must(t, err)
	var tokens []string
	for range 3 {
		c.add(time.Second)
		tok, _, err := s.Create("hub", alice(), l)
		must(t, err)
		tokens = append(tokens, tok)
	}
	if _, err := s.Lookup("hub", tokens[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("alice's oldest session: %v, want ErrNotFound", err)
	}
	for _, tok := range append(tokens[1:], bobToken) {
		if _, err := s.Lookup("hub", tok); err != nil {
			t.Errorf("a session that must stay: %v", err)
		}
	}
}

// At the node's bound new logins are refused; no one else's session ends.
// Expired sessions make room.
func TestTotalBoundRefusesNewLogins(t *testing.T) {
	c := newClock()
	s, err := Open(testkit.OpenStore(t, ""), Options{Now: c.Now, MaxTotal: 2})
	must(t, err)
	var tokens []string
	for _, u := range []string{"u1", "u2"} {
		tok, _, err := s.Create("hub", auth.Identity{UserID: u, Directory: "d"}, lim)
		must(t, err)
		tokens = append(tokens, tok)
	}
	if _, _, err := s.Create("hub", auth.Identity{UserID: "u3", Directory: "d"}, lim); !errors.Is(err, ErrFull) {
		t.Fatalf("third login: %v, want ErrFull", err)
	}
	for _, tok := range tokens {
		if _, err := s.Lookup("hub", tok); err != nil {
			t.Errorf("an existing session after the refusal: %v", err)
		}
	}
	c.add(9 * time.Hour) // both expire
	if _, _, err := s.Create("hub", auth.Identity{UserID: "u3", Directory: "d"}, lim); err != nil {
		t.Fatalf("login once the others expired: %v", err)
	}
}

// A session is bound to its virtual host.
func TestOtherVirtualHost(t *testing.T) {
	s := openStore(t, testkit.OpenStore(t, ""), newClock(), nil)
	token, _, err := s.Create("hub", alice(), lim)
	must(t, err)
	if _, err := s.Lookup("other", token); !errors.Is(err, ErrOtherHost) {
		t.Fatalf("lookup on another virtual host: %v, want ErrOtherHost", err)
	}
	for _, bad := range []string{"", "x", strings.Repeat("a", 65), token + "x"} {
		if _, err := s.Lookup("hub", bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("lookup %q: %v, want ErrNotFound", bad, err)
		}
	}
}

// Revocation by short id and per user takes effect at once and survives a
// reopen; nothing of a token reaches the log.
func TestRevoke(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	logs := &testkit.SyncBuffer{}
	db := testkit.OpenStore(t, dir)
	s := openStore(t, db, c, logs)
	a1, sa1, err := s.Create("hub", alice(), lim)
	must(t, err)
	a2, sa2, err := s.Create("other", alice(), lim)
	must(t, err)
	b1, sb1, err := s.Create("hub", auth.Identity{UserID: "bob", Directory: "corp"}, lim)
	must(t, err)

	if _, err := s.Revoke("abc"); err == nil {
		t.Error("revoking by a 3-digit id: no error")
	}
	if _, err := s.Revoke(strings.Repeat("0", 12)); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking an unknown id: %v, want ErrNotFound", err)
	}
	info, err := s.Revoke(sb1.ID)
	must(t, err)
	if info.UserID != "bob" {
		t.Errorf("revoked %+v, want bob's", info)
	}
	if _, err := s.Lookup("hub", b1); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob's session after revoke: %v", err)
	}
	gone, err := s.RevokeUser("corp", "alice")
	must(t, err)
	// Both sessions were created at the same (fake) instant, so their order
	// is only the tie-break on the id: compare the set.
	var goneIDs []string
	for _, g := range gone {
		goneIDs = append(goneIDs, g.ID)
	}
	slices.Sort(goneIDs)
	wantIDs := []string{sa1.ID, sa2.ID}
	slices.Sort(wantIDs)
	if !slices.Equal(goneIDs, wantIDs) {
		t.Errorf("revoked %+v, want alice's two sessions %v", gone, wantIDs)
	}
	for _, tok := range []string{a1, a2} {
		if _, err := s.Lookup("hub", tok); !errors.Is(err, ErrNotFound) {
			t.Errorf("alice's session after revoke: %v", err)
		}
	}
	must(t, db.Close())
	s = openStore(t, testkit.OpenStore(t, dir), c, nil)
	if n := len(s.List()); n != 0 {
		t.Errorf("%d sessions after reopening, want 0", n)
	}
	out := logs.String()
	for _, tok := range []string{a1, a2, b1} {
		if strings.Contains(out, tok) || strings.Contains(out, hashToken(tok)) {
			t.Errorf("the log holds a session token or its full hash:\n%s", out)
		}
	}
	if !strings.Contains(out, "session revoked") {
		t.Errorf("no revocation logged:\n%s", out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Logins, lookups, flushes and revocations racing: the per-user bound
// holds exactly, and the store stays consistent with its bucket.
func TestConcurrentUse(t *testing.T) {
	c := newClock()
	db := testkit.OpenStore(t, "")
	s := openStore(t, db, c, nil)
	l := lim
	l.MaxPerUser = 5
	var wg sync.WaitGroup
	tokens := make(chan string, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, _, err := s.Create("hub", alice(), l)
			if err != nil {
				t.Error(err)
				return
			}
			tokens <- tok
			s.Lookup("hub", tok)
			if i%10 == 0 {
				if err := s.Flush(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	close(tokens)
	live := 0
	for tok := range tokens {
		if _, err := s.Lookup("hub", tok); err == nil {
			live++
		}
	}
	if live != 5 || len(s.List()) != 5 {
		t.Errorf("%d live tokens, %d listed; want 5 (max_per_user)", live, len(s.List()))
	}
	keys, err := db.Bucket(BucketName).Keys()
	must(t, err)
	if len(keys) != 5 {
		t.Errorf("%d sessions in the bucket, want 5", len(keys))
	}
}

// A session keeps the IdP login it came from across a reopen, and
// EndIdPSessions ends only the sessions of that login: on that virtual
// host, from that solution, of that NameID, of one of the SessionIndexes
// (or all of the NameID's when none is given).
func TestEndIdPSessions(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	db := testkit.OpenStore(t, dir)
	s := openStore(t, db, c, nil)
	login := func(vhost, solution, nameID, index string) string {
		t.Helper()
		id := alice()
		id.Solution = solution
		id.IdPSession = &auth.IdPSession{Solution: solution, NameID: nameID, NameIDFormat: "urn:oasis:names:tc:SAML:2.0:nameid-format:transient", SessionIndex: index}
		token, _, err := s.Create(vhost, id, lim)
		must(t, err)
		return token
	}
	tokens := map[string]string{
		"a1":         login("hub", "corp", "alice@corp", "s1"),
		"a2":         login("hub", "corp", "alice@corp", "s2"),
		"other idp":  login("hub", "partner", "alice@corp", "s1"),
		"other host": login("edge", "corp", "alice@corp", "s1"),
		"bob":        login("hub", "corp", "bob@corp", "s1"),
	}
	plain, _, err := s.Create("hub", alice(), lim)
	must(t, err)
	tokens["no idp login"] = plain

	must(t, db.Close())
	db = testkit.OpenStore(t, dir)
	s = openStore(t, db, c, nil)
	got, err := s.Lookup("hub", tokens["a1"])
	must(t, err)
	want := &auth.IdPSession{Solution: "corp", NameID: "alice@corp", NameIDFormat: "urn:oasis:names:tc:SAML:2.0:nameid-format:transient", SessionIndex: "s1"}
	if d := cmp.Diff(want, got.Identity.IdPSession); d != "" {
		t.Fatalf("the IdP login after a reopen (-want +got):\n%s", d)
	}

	alive := func() []string {
		var out []string
		for name, tok := range tokens {
			vhost := "hub"
			if name == "other host" {
				vhost = "edge"
			}
			if _, err := s.Lookup(vhost, tok); err == nil {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return out
	}
	ended, err := s.EndIdPSessions("hub", "corp", "alice@corp", []string{"s1"})
	must(t, err)
	if len(ended) != 1 {
		t.Errorf("ended %d sessions, want a1 only", len(ended))
	}
	if d := cmp.Diff([]string{"a2", "bob", "no idp login", "other host", "other idp"}, alive()); d != "" {
		t.Errorf("after ending s1 (-want +got):\n%s", d)
	}
	_, err = s.EndIdPSessions("hub", "corp", "alice@corp", nil)
	must(t, err)
	if d := cmp.Diff([]string{"bob", "no idp login", "other host", "other idp"}, alive()); d != "" {
		t.Errorf("after ending every session of the NameID (-want +got):\n%s", d)
	}
	if ended, err := s.EndIdPSessions("hub", "corp", "", nil); err != nil || len(ended) != 0 {
		t.Errorf("an empty NameID ended %d sessions (%v), want none", len(ended), err)
	}
}
