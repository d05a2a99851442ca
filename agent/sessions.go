package agent

import (
	"log/slog"
	"os"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/clientapi/session"
	"github.com/edgefort/edgefort/internal/store"
)

// OpenSessionsOffline opens the client API's sessions in the state
// directory for the CLI when no agent runs; closeFn releases the state
// store (and its lock).
func OpenSessionsOffline(stateDir string) (svc adminapi.LocalSessions, closeFn func() error, err error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := store.Open(stateDir, store.Options{Logger: log})
	if err != nil {
		return adminapi.LocalSessions{}, nil, err
	}
	st, err := session.Open(db, session.Options{Logger: log})
	if err != nil {
		db.Close()
		return adminapi.LocalSessions{}, nil, err
	}
	return adminapi.LocalSessions{Store: func() *session.Store { return st }}, db.Close, nil
}
