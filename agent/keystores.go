package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

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

func openKeystores(stateDir string, log *slog.Logger) (*adminapi.LocalKeystores, error) {
	stores, err := keystore.Open(keystore.Options{Dir: filepath.Join(stateDir, keystoresDir), Logger: log})
	if err != nil {
		return nil, err
	}
	pairs, err := keystore.OpenKeyPairs(filepath.Join(stateDir, keyPairsDir), log)
	if err != nil {
		return nil, err
	}
	return &adminapi.LocalKeystores{Stores: stores, KeyPairs: pairs}, nil
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

// prepareKeystores seeds the references the configuration declares (the
// ones repointed at run time are kept) and makes the built-in certificate
// when a virtual host needs it.
func (a *Agent) prepareKeystores(log *slog.Logger) error {
	ks := a.keystores.Stores
	existing := ks.Refs()
	var probs []config.Problem
	names := make([]string, 0, len(a.cfg.Keystores.References))
	for name := range a.cfg.Keystores.References {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		target := a.cfg.Keystores.References[name]
		if cur, ok := existing[name]; ok {
			if cur != target {
				log.Info("reference was repointed at run time; keeping it", "ref", name, "points_at", cur, "config_says", target)
			}
			continue
		}
		if err := ks.SetRef(name, target); err != nil {
			probs = append(probs, a.cfg.Problem("keystores.references."+name, "%v (create it with `edgefort keystore create %s` or `edgefort truststore create %s`)", err, target, target))
		}
	}
	if len(probs) > 0 {
		return &config.Error{Problems: probs}
	}
	for _, vh := range a.cfg.Clients.VirtualHosts {
		if config.IsEnabled(vh.SSL.Enabled, false) && vh.SSL.Keystore == "" {
			generated, err := ks.EnsureBuiltin(builtinHostnames(a.cfg.Device.Hostnames))
			if err != nil {
				return err
			}
			if generated {
				log.Warn("generated the built-in self-signed certificate", "store", keystore.BuiltinStore, "alias", keystore.BuiltinAlias)
			}
			break
		}
	}
	return nil
}

// builtinHostnames are the names the built-in certificate is issued for:
// the configured ones, else the host name and loopback.
func builtinHostnames(configured []string) []string {
	if len(configured) > 0 {
		return configured
	}
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	return names
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
