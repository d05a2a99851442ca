package agent

import (
	"context"
	"errors"
	"os"

	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/clientapi"
	"github.com/edgefort/edgefort/clientapi/backendjwt"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/supervisor"
)

// clientComponents builds the client API when virtual hosts are
// configured, with the authentication API when clients.auth_api is on:
// clientapi.Server owns the virtual hosts, routes, solutions
// and proxy; the agent hands it the keystores and the control plane's
// authorizer. It is built after the control-plane link, whose decision
// cache answers for it.
func (a *Agent) clientComponents(cl *cloudclient.Node) ([]supervisor.Spec, error) {
	if len(a.cfg.Clients.VirtualHosts) == 0 {
		return nil, nil
	}
	api, specs, err := a.authAPIComponent()
	if err != nil {
		return nil, err
	}
	deps := clientapi.Deps{
		AuthAPI:        api,
		Keystores:      a.keystores.Stores,
		Logger:         a.log.With(LogKeyComponent, "clientapi"),
		Registerer:     a.reg,
		Ready:          a.readyFunc("clientapi"),
		IdentityMinter: a.identityMinter,
		Store:          a.db, // the node's sessions
		KeyPairs:       a.keystores.KeyPairs,
	}
	if cl != nil {
		deps.Authorizer = cloudAuthorizer{cl.Authorizer()}
	}
	srv, err := clientapi.New(a.cfg.Clients, deps)
	if err != nil {
		return nil, a.storeProblems(err)
	}
	a.clients.Store(srv)
	return append(specs, supervisor.Spec{Name: "clientapi", SignalsReady: true, Runner: srv}), nil
}

// cloudAuthorizer asks the control plane's decision cache the client
// API's questions. The cache is keyed by the whole question, user
// included, so one user's answer never serves another.
type cloudAuthorizer struct{ a *cloudclient.Authorizer }

var _ clientapi.Authorizer = cloudAuthorizer{}

func (c cloudAuthorizer) Authorize(ctx context.Context, r clientapi.AuthzRequest) (clientapi.Decision, error) {
	d, err := c.a.Decide(ctx, api.AuthorizeRequest{
		User:     api.User{ID: r.UserID, Directory: r.Directory, Groups: r.Groups},
		Action:   r.Action,
		Resource: api.Resource{Type: r.Resource.Type, ID: r.Resource.ID, Space: r.Resource.Space},
	})
	return clientapi.Decision{Allow: d.Allow, Reason: d.Reason, Source: d.Source}, err
}

// ReloadClients reads the configuration file again and applies its
// clients section to the running client API: virtual hosts, routes,
// solutions and target endpoints change without a restart and without
// dropping open connections. An invalid file, or a clients section that
// does not build, changes nothing and is returned with FILE:LINE. Other
// sections are not applied: they need a restart.
func (a *Agent) ReloadClients() error {
	srv := a.clients.Load()
	if srv == nil {
		return errors.New("the client API is not running (no virtual hosts at start); restart the agent to add one")
	}
	cfg, err := config.Load(a.cfg.File())
	if err != nil {
		return err
	}
	if err := srv.Reload(cfg.Clients); err != nil {
		return problemsIn(cfg, err)
	}
	return nil
}

// identityMinter builds the node-signed identity token of a virtual host
// whose identity.jwt names a keystore. Unless configured, the issuer is
// the node: "edgefort:" and its device id (or host name).
func (a *Agent) identityMinter(c clientapi.IdentityJWT) (clientapi.IdentityMinter, error) {
	id := a.cfg.Device.ID
	if id == "" {
		id, _ = os.Hostname()
	}
	return backendjwt.New(c, backendjwt.Deps{
		Keystores: a.keystores.Stores,
		Issuer:    "edgefort:" + id,
		Logger:    a.log.With(LogKeyComponent, "clientapi"),
	})
}
