package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/clientapi"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/internal/supervisor"
	"github.com/edgefort/edgefort/keystore"
)

// Where the keystore package keeps its files under the state directory.
const (
	keystoresDir = "keystores"
	keyPairsDir  = "oidc-keys"
)

// openKeystores opens the keystores of a state directory as they are, for
// the commands that change them.
func openKeystores(stateDir string, log *slog.Logger) (*adminapi.LocalKeystores, error) {
	stores, pairs, err := keystore.OpenAll(keystore.Config{}, keystoreOptions(stateDir, log))
	if err != nil {
		return nil, err
	}
	return &adminapi.LocalKeystores{Stores: stores, KeyPairs: pairs}, nil
}

func keystoreOptions(stateDir string, log *slog.Logger) keystore.OpenOptions {
	return keystore.OpenOptions{Dir: filepath.Join(stateDir, keystoresDir), PairsDir: filepath.Join(stateDir, keyPairsDir), Logger: log}
}

// OpenKeystoresOffline opens the keystores of a state directory that no
// agent is running on, holding the state directory's lock until close is
// called so that an agent cannot start half-way through a change. The
// CLI performs its keystore operations on it when no agent answers.
func OpenKeystoresOffline(stateDir string) (svc *adminapi.LocalKeystores, closeFn func() error, err error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := store.Open(stateDir, store.Options{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	svc, err = openKeystores(stateDir, log)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return svc, db.Close, nil
}

// runKeystores opens the keystores for the configuration: the references
// it declares are created, and the built-in certificate is made when a
// virtual host serves TLS without naming a keystore. A reference that
// cannot be created is placed in the configuration file.
func (a *Agent) runKeystores() (*adminapi.LocalKeystores, error) {
	opts := keystoreOptions(a.cfg.StateDir, a.log.With(LogKeyComponent, "keystore"))
	opts.BuiltinHostnames = a.cfg.Device.Hostnames
	for _, vh := range a.cfg.Clients.VirtualHosts {
		if config.IsEnabled(vh.SSL.Enabled, false) && vh.SSL.Keystore == "" {
			opts.NeedBuiltin = true
		}
	}
	stores, pairs, err := keystore.OpenAll(a.cfg.Keystores, opts)
	if err != nil {
		return nil, a.keystoreProblems(err)
	}
	return &adminapi.LocalKeystores{Stores: stores, KeyPairs: pairs}, nil
}

// keystoreProblems places the references OpenAll could not create in the
// configuration file, with how to create the store they name.
func (a *Agent) keystoreProblems(err error) error {
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	var probs []config.Problem
	for _, e := range errs {
		var fe *keystore.FieldError
		if !errors.As(e, &fe) {
			return err
		}
		target := a.cfg.Keystores.References[strings.TrimPrefix(fe.Field, "references.")]
		probs = append(probs, a.cfg.Problem("keystores."+fe.Field, "%v (create it with `edgefort keystore create %s` or `edgefort truststore create %s`)", fe.Err, target, target))
	}
	return &config.Error{Problems: probs}
}

// storeProblems places TLS settings that do not resolve in the
// configuration file.
func (a *Agent) storeProblems(err error) error { return problemsIn(a.cfg, err) }

// problemsIn places clientapi's field errors in cfg's file; any other
// error is returned as it is.
func problemsIn(cfg *config.Config, err error) error {
	var errs []error
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	} else {
		errs = []error{err}
	}
	var probs []config.Problem
	for _, e := range errs {
		var fe *clientapi.FieldError
		if !errors.As(e, &fe) {
			return err
		}
		probs = append(probs, cfg.Problem(fe.Field, "%v", fe.Err))
	}
	return &config.Error{Problems: sortProblems(probs)}
}

// closeListeners releases listeners bound for components that will not
// start because a later one failed to set up.
func closeListeners(specs []supervisor.Spec) {
	for _, s := range specs {
		if h, ok := s.Runner.(*httpComponent); ok && h.first != nil {
			h.first.Close()
			h.first = nil
		}
	}
}

func certificateWarnings(ks *keystore.Manager) []string {
	var out []string
	for _, st := range ks.List() {
		for _, e := range st.Entries {
			if e.Warning != "" {
				out = append(out, fmt.Sprintf("%s/%s: %s", st.Name, e.Alias, e.Warning))
			}
		}
	}
	return out
}
