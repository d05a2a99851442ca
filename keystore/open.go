package keystore

import (
	"errors"
	"log/slog"
	"maps"
	"os"
	"slices"
)

// Config is the keystores section of the configuration file; the agent's
// config package composes it, validates its names and places the errors
// OpenAll returns.
type Config struct {
	// References map a reference name to the keystore or truststore it
	// points at when the agent first starts. Repointing at run time is
	// persisted in the state directory and wins over this.
	References map[string]string `yaml:"references"`
}

// OpenOptions are what OpenAll needs besides the section.
type OpenOptions struct {
	// Dir holds the stores and references (normally
	// <state_dir>/keystores). Required.
	Dir string
	// PairsDir holds the OIDC key pairs (normally <state_dir>/oidc-keys).
	// Required.
	PairsDir string
	// Logger receives the warnings. Required.
	Logger *slog.Logger
	// NeedBuiltin makes (or renews) the built-in self-signed certificate:
	// a TLS listener serves it when it names no keystore.
	NeedBuiltin bool
	// BuiltinHostnames are the names the built-in certificate is issued
	// for. Empty: localhost, the loopback addresses and the host name.
	BuiltinHostnames []string
}

// FieldError is a problem with one field of the keystores section that
// only opening the stores finds (a reference to a store that does not
// exist). Field is relative to the section, e.g. "references.NAME"; the
// agent places it in the configuration file.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// OpenAll opens the stores and the key pairs of a state directory and
// prepares them for cfg: it creates the references cfg declares (one
// repointed at run time is kept, and logged), and makes the built-in
// certificate when opts.NeedBuiltin. References that cannot be created are
// returned together, each a *FieldError, and nothing else is done.
func OpenAll(cfg Config, opts OpenOptions) (*Manager, *KeyPairs, error) {
	m, err := Open(Options{Dir: opts.Dir, Logger: opts.Logger})
	if err != nil {
		return nil, nil, err
	}
	pairs, err := OpenKeyPairs(opts.PairsDir, opts.Logger)
	if err != nil {
		return nil, nil, err
	}
	if err := m.seedRefs(cfg.References); err != nil {
		return nil, nil, err
	}
	if opts.NeedBuiltin {
		generated, err := m.EnsureBuiltin(builtinHostnames(opts.BuiltinHostnames))
		if err != nil {
			return nil, nil, err
		}
		if generated {
			m.log.Warn("generated the built-in self-signed certificate", "store", BuiltinStore, "alias", BuiltinAlias)
		}
	}
	return m, pairs, nil
}

// seedRefs creates the references a configuration declares, in name
// order, keeping those that exist: a reference repointed at run time
// wins over the file.
func (m *Manager) seedRefs(refs map[string]string) error {
	existing := m.Refs()
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		target := refs[name]
		if cur, ok := existing[name]; ok {
			if cur != target {
				m.log.Info("reference was repointed at run time; keeping it", "ref", name, "points_at", cur, "config_says", target)
			}
			continue
		}
		if err := m.SetRef(name, target); err != nil {
			errs = append(errs, &FieldError{Field: "references." + name, Err: err})
		}
	}
	return errors.Join(errs...)
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
