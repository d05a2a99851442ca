package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/internal/store"
)

func newSessionsCmd() *command {
	return (&command{
		name:  "sessions",
		short: "list and revoke the client API's sessions",
		long: `List and revoke the node's sessions: the ones interactive logins (ticket,
SAML, OIDC) open on the client API's virtual hosts. A session is shown by its
id (the first 12 hex digits of its token's hash; the token itself is never
shown). A revocation takes effect on the session's next request.

Commands act on the running agent (over its admin socket) when one runs,
else directly on the state directory.`,
	}).add(newSessionsListCmd(), newSessionsRevokeCmd())
}

// sessionsCall is one sessions operation; it prints its own answer.
type sessionsCall func(ctx context.Context, ss adminapi.Sessions, st streams) error

// runSessions performs call on the running agent or, when none answers,
// on the state directory.
func (t target) runSessions(ctx context.Context, st streams, call sessionsCall) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	socket, stateDir, err := t.resolve()
	if err != nil {
		return err
	}
	client := adminClient(socket)
	err = client.Ping(ctx)
	if !errors.Is(err, adminclient.ErrNotRunning) {
		if err != nil {
			return err
		}
		return call(ctx, client, st)
	}
	if err := store.ActAsOwner(stateDir); err != nil {
		return err
	}
	svc, closeFn, err := agent.OpenSessionsOffline(stateDir)
	if err != nil {
		return err
	}
	defer closeFn()
	return call(ctx, svc, st)
}

func newSessionsListCmd() *command {
	c := &command{name: "list", short: "list the sessions, oldest first"}
	fs := c.fs()
	t := addTargetFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		return t.runSessions(ctx, st, func(ctx context.Context, ss adminapi.Sessions, st streams) error {
			list, err := ss.ListSessions(ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(st.stdout, list.Sessions)
			}
			printSessions(st.stdout, list.Sessions)
			return nil
		})
	}
	return c
}

func printSessions(w io.Writer, ss []adminapi.SessionInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVIRTUAL HOST\tUSER\tSOLUTION\tCREATED\tLAST SEEN\tEXPIRES")
	for _, s := range ss {
		end := s.Expires
		if s.IdleExpires.Before(end) {
			end = s.IdleExpires
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\n", s.ID, s.VirtualHost, s.Directory, s.UserID, s.Solution,
			s.Created.UTC().Format(time.RFC3339), s.LastSeen.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	tw.Flush()
}

func newSessionsRevokeCmd() *command {
	c := &command{
		name:  "revoke",
		args:  "ID | --user DIRECTORY/USER_ID",
		short: "end one session, or every session of a user",
	}
	fs := c.fs()
	t := addTargetFlags(fs)
	user := fs.String("user", "", "end every session of `DIRECTORY/USER_ID`")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		want := 1
		if *user != "" {
			want = 0
		}
		if err := c.wantArgs(args, want); err != nil {
			return err
		}
		return t.runSessions(ctx, st, func(ctx context.Context, ss adminapi.Sessions, st streams) error {
			var res *adminapi.SessionRevoked
			var err error
			if *user != "" {
				res, err = ss.RevokeUserSessions(ctx, *user)
			} else {
				res, err = ss.RevokeSession(ctx, args[0])
			}
			if err != nil {
				return err
			}
			for _, s := range res.Revoked {
				fmt.Fprintf(st.stdout, "revoked session %s of %s/%s on %s\n", s.ID, s.Directory, s.UserID, s.VirtualHost)
			}
			if len(res.Revoked) == 0 {
				fmt.Fprintln(st.stdout, "no session to revoke")
			}
			return nil
		})
	}
	return c
}
