package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"regexp"
	"time"

	"github.com/edgefort/edgefort/devcloud/devstack"
)

func newLoginCmd() *command {
	c := &command{
		name:  "login",
		args:  "saml|oidc",
		short: "sign a user in through a dev IdP as a browser does",
		long: `Sign a user in through the dev SAML IdP (npm samlify) or the dev OpenID
provider (npm oidc-provider) that edgefort-dev runs, taking a browser's
steps with a cookie jar: the node's virtual host sso sends it to the IdP,
the IdP's login form (and OIDC's consent page) is filled in, the IdP's
answer goes back through the node (SAML's ACS, OIDC's callback: a node
session), and the engine's page is read. Prints the identity that page
shows. Exits 1 when the IdP refuses the password or the node the login.

  edgefort-dev login saml --user alice --password alice-dev
  edgefort-dev login oidc --user bob --password bob-dev`,
		flags: flag.NewFlagSet("login", flag.ContinueOnError),
	}
	cfgPath := c.flags.String("config", configPath(), "the dev configuration `FILE`")
	user := c.flags.String("user", "alice", "the `USER` to sign in (alice or bob)")
	password := c.flags.String("password", "", "the user's `PASSWORD` (default: the dev password of --user, as the banner prints)")
	timeout := c.flags.Duration("timeout", 30*time.Second, "how long the login may take")
	c.exec = func(ctx context.Context, stdout io.Writer, args []string) error {
		if err := c.wantArgs(args, 1); err != nil {
			return err
		}
		if args[0] != devstack.IdPSAML && args[0] != devstack.IdPOIDC {
			return usageError{fmt.Sprintf("%s: %q is not saml or oidc", c.path(), args[0])}
		}
		pw := *password
		if pw == "" {
			pw = devstack.DevUsers[*user].Password
		}
		cl, err := devstack.Open(ctx, *cfgPath)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		page, err := cl.Login(ctx, args[0], *user, pw)
		if errors.Is(err, devstack.ErrLoginRefused) {
			return exitError{code: 1, err: fmt.Errorf("login %s as %s: %w", args[0], *user, err)}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "signed in through %s; the engine's page shows:\n", args[0])
		for _, m := range pageRow.FindAllStringSubmatch(string(page), -1) {
			fmt.Fprintf(stdout, "  %s: %s\n", html.UnescapeString(m[1]), html.UnescapeString(m[2]))
		}
		return nil
	}
	return c
}

// pageRow is a row of the engine page's identity table.
var pageRow = regexp.MustCompile(`<tr><th>([^<]*)</th><td>([^<]*)</td></tr>`)
