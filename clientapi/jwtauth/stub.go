package jwtauth

import (
	"errors"
	"log/slog"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
	"github.com/edgefort/edgefort/keystore"
)

// TEMPORARY stand-in for the JWT solution so that clientapi compiles
// before it lands; dropped at merge.

// Deps are what a JWT solution needs from the process.
type Deps struct {
	Keystores *keystore.Manager
	Logger    *slog.Logger
	Now       func() time.Time
}

// Solution is the JWT solution.
type Solution struct{ auth.Solution }

// New is not built yet.
func New(cfg Config, deps Deps) (*Solution, error) {
	return nil, errors.New("jwt solution not built yet")
}

// Validate checks nothing yet.
func (c *Config) Validate() error { return nil }
