package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/cloudclient/outbox"
)

// adminHandler serves the local admin API (package adminapi). The
// socket's file mode and the peer gate (adminpeer.go) decide who reaches
// it; the routes themselves authenticate no one.
func (a *Agent) adminHandler() http.Handler {
	ops := adminOps{a}
	srv := &adminapi.Server{
		AgentVersion: a.build.Version,
		Status: func() *adminapi.Status {
			st := a.Status()
			return &st
		},
		Keystores:   a.keystores,
		Updates:     ops,
		CheckUpdate: ops.checkUpdate,
		Cloud:       ops,
		Restart:     func() { a.restart() },
		ReloadClients: func() error {
			return a.ReloadClients()
		},
		Sessions: adminapi.LocalSessions{Store: func() *session.Store {
			if srv := a.clients.Load(); srv != nil {
				return srv.Sessions()
			}
			return nil
		}},
	}
	return srv.Handler()
}

// adminOps performs the admin operations that need the running links. It
// reads them at each call: the admin API is up before the links are
// built.
type adminOps struct{ a *Agent }

// updates is the update machine under the agent's lifetime.
func (o adminOps) updates() *adminapi.LocalUpdates { return o.a.updates(o.a.links.Load()) }

func (o adminOps) UpdateStatus(ctx context.Context) (*adminapi.UpdateStatus, error) {
	return o.updates().UpdateStatus(ctx)
}

func (o adminOps) InstallUpdate(ctx context.Context, artifact io.Reader, commit bool) (*adminapi.UpdateResult, error) {
	return o.updates().InstallUpdate(ctx, artifact, commit)
}

func (o adminOps) CommitUpdate(ctx context.Context) (*adminapi.UpdateResult, error) {
	return o.updates().CommitUpdate(ctx)
}

func (o adminOps) RollbackUpdate(ctx context.Context) (*adminapi.UpdateResult, error) {
	return o.updates().RollbackUpdate(ctx)
}

func (o adminOps) checkUpdate() (time.Time, error) {
	p := o.a.links.Load().poller()
	if p == nil {
		return time.Time{}, adminapi.Conflict(errors.New("the update channel is off: set updates.enabled: true (and updates.server_url) to check a server"))
	}
	p.CheckNow()
	if held := p.Status().RetryAfterUntil; held.After(time.Now()) {
		return held, nil
	}
	return time.Time{}, nil
}

var errNoCloud = adminapi.Conflict(errors.New("the control plane link is off: enroll the node and set cloud.enabled: true"))

// cloud is the control-plane link; nil when it is off or not built yet.
func (o adminOps) cloud() *cloudclient.Node {
	if l := o.a.links.Load(); l != nil {
		return l.cloud
	}
	return nil
}

func (o adminOps) CloudStatus(context.Context) (*adminapi.CloudStatus, error) {
	cl := o.cloud()
	if cl == nil {
		return nil, errNoCloud
	}
	return cloudStatus(cl), nil
}

func (o adminOps) Authorize(ctx context.Context, req api.AuthorizeRequest) (*adminapi.AuthorizeReply, error) {
	cl := o.cloud()
	if cl == nil {
		return nil, errNoCloud
	}
	d, err := cl.Authorizer().Decide(ctx, req)
	reply := &adminapi.AuthorizeReply{Decision: adminapi.Decision{Allow: d.Allow, Reason: d.Reason, TTLSeconds: d.TTLSeconds, Source: d.Source}}
	if err != nil {
		// The decision (a deny) stands; say why too.
		reply.Error = err.Error()
	}
	return reply, nil
}

func (o adminOps) Report(ctx context.Context, req adminapi.ReportRequest) (*adminapi.ReportReply, error) {
	cl := o.cloud()
	if cl == nil {
		return nil, errNoCloud
	}
	prio := outbox.Low
	if req.High {
		prio = outbox.High
	}
	key, err := cl.Outbox().Enqueue(ctx, outbox.Item{Stream: req.Stream, Type: req.Type, Body: req.Body, Priority: prio})
	if err != nil {
		return nil, adminapi.BadRequest(err)
	}
	return &adminapi.ReportReply{IdempotencyKey: key}, nil
}

// writeAdminError answers an admin caller with an error.
func writeAdminError(w http.ResponseWriter, code int, err error) {
	adminapi.WriteError(w, code, err)
}

// listenAdmin binds the admin socket at cfg.Socket with mode 0600, or
// 0666 when cfg allows other users (the peer gate then checks each
// caller), replacing a stale socket file left by a crash. Only one agent
// holds the state directory lock, so a leftover socket at our path is
// never a live peer's.
//
// The socket never exists at its path with a wider mode than that, and no
// one else can connect before the mode is set: it is bound in a fresh
// directory of mode 0700 beside the final path, chmodded there, and then
// renamed into place, which is atomic. The alternatives were worse: the
// umask is process-wide, so narrowing it around the bind races with every
// other goroutine creating files (and runAgent's umask 077 does not hold
// for tests or embedders); binding and then chmodding at the final path
// leaves a window in which the socket has the umask's mode.
func listenAdmin(cfg config.Admin) (net.Listener, error) {
	path := cfg.Socket
	mode, dirMode := os.FileMode(0o600), os.FileMode(0o700)
	if cfg.AllowsOthers() {
		if !peerCredSupported {
			return nil, fmt.Errorf("admin: allow_uids and allow_gids need SO_PEERCRED, which edgefort supports only on Linux")
		}
		// Allowed users must search the directory and write the socket
		// to connect; the peer gate then decides.
		mode, dirMode = 0o666, 0o755
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, fmt.Errorf("admin: socket directory: %w", err)
		}
		// MkdirAll's mode went through the umask.
		if err := os.Chmod(dir, dirMode); err != nil {
			return nil, fmt.Errorf("admin: socket directory: %w", err)
		}
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("admin: %s exists and is not a socket; refusing to replace it", path)
	}
	// The name fits in a socket address: config checks the directory's
	// length against it (maxSocketDir).
	private, err := os.MkdirTemp(dir, ".a")
	if err != nil {
		return nil, fmt.Errorf("admin: socket directory: %w", err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // it will not be at tmp; Close removes path
	if err := os.Chmod(tmp, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: move the socket into place at %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	return &adminListener{UnixListener: ul, path: path, file: fi}, nil
}

// adminListener removes its socket file on Close, as a unix listener
// does for the path it bound, unless another file has taken its place.
type adminListener struct {
	*net.UnixListener
	path string
	file os.FileInfo // the socket as moved into place
}

// Addr is the socket's path, not the private name it was bound at.
func (l *adminListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *adminListener) Close() error {
	err := l.UnixListener.Close()
	if fi, statErr := os.Lstat(l.path); statErr == nil && os.SameFile(fi, l.file) {
		os.Remove(l.path)
	}
	return err
}
