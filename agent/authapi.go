package agent

import (
	"fmt"

	"github.com/edgefort/edgefort/clientapi/authapi"
	"github.com/edgefort/edgefort/internal/supervisor"
)

// authAPIComponent builds the authentication API when clients.auth_api
// has a listen address: a component of its own (its listener is bound in
// Run, before it reports ready) that also holds the tickets and session
// tokens the client API's ticket and session_module solutions read.
func (a *Agent) authAPIComponent() (*authapi.API, []supervisor.Spec, error) {
	c := a.cfg.Clients.AuthAPI
	if c.Listen == "" {
		return nil, nil, nil
	}
	api, err := authapi.New(c, authapi.Deps{
		Keystores:  a.keystores.Stores,
		Logger:     a.log.With(LogKeyComponent, "authapi"),
		Ready:      a.readyFunc("authapi"),
		State:      a.db,
		Registerer: a.reg,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("clients.auth_api: %w", err)
	}
	a.authAPI.Store(api)
	return api, []supervisor.Spec{{Name: "authapi", SignalsReady: true, Runner: api}}, nil
}
