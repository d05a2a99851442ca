package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/internal/loglimit"
)

// peer is the process at the other end of an admin connection, as the
// kernel reports it when the connection is made (SO_PEERCRED).
type peer struct {
	UID, GID uint32
	PID      int32
}

// peerGate decides who may use the admin API: root, the agent's own user,
// and the uids and gids the configuration allows. The socket's file mode
// keeps everyone else out when no others are allowed; when some are, the
// socket is open to all local users and this gate is what refuses them,
// so it checks every request and never lets an unknown caller through.
type peerGate struct {
	self   uint32 // the agent's effective uid
	others bool   // admin.allow_uids or allow_gids is set
	uids   map[uint32]bool
	gids   map[uint32]bool
	warn   *loglimit.Limiter
}

func newPeerGate(cfg config.Admin, log *slog.Logger) *peerGate {
	g := &peerGate{
		self:   uint32(os.Geteuid()),
		others: cfg.AllowsOthers(),
		uids:   map[uint32]bool{},
		gids:   map[uint32]bool{},
		warn:   loglimit.New(log, refusalLogEvery, nil),
	}
	for _, id := range cfg.AllowUIDs {
		g.uids[uint32(id)] = true
	}
	for _, id := range cfg.AllowGIDs {
		g.gids[uint32(id)] = true
	}
	return g
}

func (g *peerGate) allows(p peer) bool {
	return p.UID == 0 || p.UID == g.self || g.uids[p.UID] || g.gids[p.GID]
}

type peerKey struct{}

type peerResult struct {
	peer peer
	err  error
}

// connContext reads the caller's credentials once per connection, for
// http.Server.ConnContext.
func (g *peerGate) connContext(ctx context.Context, c net.Conn) context.Context {
	p, err := peerCred(c)
	return context.WithValue(ctx, peerKey{}, peerResult{p, err})
}

// handler lets a request through to next only from an allowed caller, and
// answers everyone else 403 with what to do.
func (g *peerGate) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, ok := r.Context().Value(peerKey{}).(peerResult)
		switch {
		case !ok:
			// A server without connContext: refuse rather than guess.
			g.refuse(w, nil, fmt.Errorf("the caller's credentials were not read"))
		case errors.Is(res.err, errNoPeerCred) && !g.others:
			// No SO_PEERCRED on this OS; the socket's mode 0600 is the
			// gate, as listenAdmin refuses allow lists here.
			next.ServeHTTP(w, r)
		case res.err != nil:
			g.refuse(w, nil, res.err)
		case !g.allows(res.peer):
			g.refuse(w, &res.peer, nil)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// refusalLogEvery spaces the log lines about each refused uid and gid, so
// that a local user looping on the socket cannot flood the log; the lines
// left out are counted in the next one.
const refusalLogEvery = 10 * time.Second

func (g *peerGate) refuse(w http.ResponseWriter, p *peer, err error) {
	if p != nil {
		g.warn.Warn(fmt.Sprintf("uid %d gid %d", p.UID, p.GID), "refused an admin API caller", "uid", p.UID, "gid", p.GID, "pid", p.PID)
	} else {
		g.warn.Warn("no credentials", "refused an admin API caller whose credentials could not be read", "err", err)
	}
	w.Header().Set("Connection", "close")
	msg := fmt.Errorf("admin: could not identify the caller: %w", err)
	if p != nil {
		msg = fmt.Errorf("admin: uid %d (gid %d) may not use the admin API; root, the agent's user (uid %d) and the ids in admin.allow_uids and admin.allow_gids may", p.UID, p.GID, g.self)
	}
	writeAdminError(w, http.StatusForbidden, msg)
}
