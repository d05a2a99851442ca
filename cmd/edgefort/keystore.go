package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/adminclient"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/internal/store"
	"github.com/edgefort/edgefort/keystore"
)

// target says where keystore commands act: the running agent's admin
// socket when one answers (the change is live at the next handshake), else
// the state directory directly.
type target struct {
	config, socket, stateDir *string
}

func addTargetFlags(fs *flag.FlagSet) target {
	return target{
		config:   fs.String("config", configPath(), "configuration `FILE` naming the state directory and admin socket"),
		socket:   fs.String("socket", "", "admin socket `PATH` of a running agent (overrides the configuration)"),
		stateDir: fs.String("state-dir", "", "state `DIR` to change when no agent is running (overrides the configuration)"),
	}
}

func (t target) resolve() (socket, stateDir string, err error) {
	socket, stateDir = *t.socket, *t.stateDir
	cfg, err := config.Load(*t.config)
	switch {
	case errors.Is(err, config.ErrNoConfig):
		if stateDir == "" {
			stateDir = config.DefaultStateDir
		}
		if socket == "" {
			socket = filepath.Join(stateDir, "admin.sock")
		}
	case err != nil:
		return "", "", err
	default:
		if stateDir == "" {
			stateDir = cfg.StateDir
		}
		if socket == "" {
			socket = cfg.Admin.Socket
		}
	}
	return socket, stateDir, nil
}

// open returns the keystore operations of the running agent, or, when
// none answers, the same operations in this process on the state
// directory (holding its lock until closeFn).
func (t target) open(ctx context.Context) (ks adminapi.Keystores, closeFn func() error, err error) {
	socket, stateDir, err := t.resolve()
	if err != nil {
		return nil, nil, err
	}
	client := adminClient(socket)
	err = client.Ping(ctx)
	if !errors.Is(err, adminclient.ErrNotRunning) {
		return client, func() error { return nil }, err
	}
	// The request (with any files it names) is read: from here on act as
	// the agent's user, so that new files in the state directory are its.
	if err := store.ActAsOwner(stateDir); err != nil {
		return nil, nil, err
	}
	svc, closeFn, err := agent.OpenKeystoresOffline(stateDir)
	if err != nil {
		return nil, nil, err
	}
	return svc, closeFn, nil
}

// keystoreCall is one keystore operation; it prints its own answer.
type keystoreCall func(ctx context.Context, ks adminapi.Keystores, st streams) error

// run performs call on the running agent or the state directory.
func (t target) run(ctx context.Context, st streams, call keystoreCall) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ks, closeFn, err := t.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	return call(ctx, ks, st)
}

// keystoreOp makes c a command that performs the call build makes from
// its arguments (nargs of them; -1 lets build check). build reads any
// files the call needs, before the command acts as the agent's user.
func keystoreOp(c *command, nargs int, build func(args []string) (keystoreCall, error)) *command {
	t := addTargetFlags(c.fs())
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if nargs >= 0 {
			if err := c.wantArgs(args, nargs); err != nil {
				return err
			}
		}
		call, err := build(args)
		if err != nil {
			return err
		}
		return t.run(ctx, st, call)
	}
	return c
}

// change makes a keystoreCall of an operation that changes something.
func change(op func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Change, error)) keystoreCall {
	return func(ctx context.Context, ks adminapi.Keystores, st streams) error {
		ch, err := op(ctx, ks)
		if err != nil {
			return err
		}
		for _, w := range ch.Warnings {
			fmt.Fprintf(st.stderr, "warning: %s\n", w)
		}
		if ch.Message != "" {
			fmt.Fprintln(st.stdout, ch.Message)
		}
		return nil
	}
}

// document makes a keystoreCall of an operation that answers a document
// to print as is.
func document(op func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Document, error)) keystoreCall {
	return func(ctx context.Context, ks adminapi.Keystores, st streams) error {
		d, err := op(ctx, ks)
		if err != nil {
			return err
		}
		_, err = io.WriteString(st.stdout, d.Data)
		return err
	}
}

// printJSON prints v as indented JSON for machines.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newKeystoreCmd() *command {
	return (&command{
		name:  "keystore",
		short: "manage keystores (private keys with their certificates)",
		long: `Manage keystores: named sets of aliases, each a private key and its
certificate chain, which TLS settings name directly or as ref://REFERENCE.

Replacing an expiring certificate without a restart:
  edgefort keystore create hub-2027
  edgefort keystore import hub-2027 hub --key new.key --cert new.crt
  edgefort ref set hub-tls hub-2027      # live at the next handshake

Commands act on the running agent (over its admin socket) when one runs,
else directly on the state directory.`,
	}).add(
		newStoreCreateCmd(keystore.KindKeystore),
		newKeystoreImportCmd(),
		newStoreListCmd(keystore.KindKeystore),
		newStoreDeleteCmd(keystore.KindKeystore),
		newExportCertCmd(),
	)
}

func newTruststoreCmd() *command {
	return (&command{
		name:  "truststore",
		short: "manage truststores (certificates to trust)",
		long: `Manage truststores: named sets of CA or peer certificates that TLS settings
use to verify the other side. Commands act on the running agent when one
runs, else directly on the state directory.`,
	}).add(
		newStoreCreateCmd(keystore.KindTruststore),
		newTruststoreImportCmd(),
		newStoreListCmd(keystore.KindTruststore),
		newStoreDeleteCmd(keystore.KindTruststore),
	)
}

func newStoreCreateCmd(kind keystore.Kind) *command {
	c := &command{name: "create", args: "NAME", short: "create an empty " + string(kind)}
	return keystoreOp(c, 1, func(args []string) (keystoreCall, error) {
		return change(func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Change, error) {
			return ks.CreateStore(ctx, adminapi.CreateStoreRequest{Name: args[0], Kind: kind})
		}), nil
	})
}

func newKeystoreImportCmd() *command {
	c := &command{
		name:  "import",
		args:  "STORE ALIAS",
		short: "import a key and certificate chain (PEM or PKCS#12) under an alias",
		long: `Import a private key and its certificate chain into a keystore under ALIAS,
replacing what the alias held. PEM keys may be PKCS#1, PKCS#8 or SEC1,
encrypted or not; the chain file may hold the leaf and intermediates in any
order. Or give a PKCS#12 bundle. The key must match the certificate.`,
	}
	fs := c.fs()
	keyFile := fs.String("key", "", "private key `FILE` (PEM)")
	certFile := fs.String("cert", "", "certificate chain `FILE` (PEM)")
	passFile := fs.String("passphrase-file", "", "`FILE` holding the passphrase of an encrypted key")
	p12File := fs.String("pkcs12", "", "PKCS#12 `FILE` (instead of --key and --cert)")
	p12PassFile := fs.String("password-file", "", "`FILE` holding the PKCS#12 password")
	return keystoreOp(c, 2, func(args []string) (keystoreCall, error) {
		req := adminapi.ImportRequest{Kind: keystore.KindKeystore}
		var err error
		switch {
		case *p12File != "":
			if *keyFile != "" || *certFile != "" {
				return nil, usageError{"keystore import: give --pkcs12 or --key and --cert, not both"}
			}
			if req.PKCS12, err = os.ReadFile(*p12File); err != nil {
				return nil, err
			}
			if *p12PassFile != "" {
				pw, err := readSecret(*p12PassFile)
				if err != nil {
					return nil, err
				}
				req.Password = string(pw)
			}
		case *keyFile != "" && *certFile != "":
			if req.KeyPEM, err = os.ReadFile(*keyFile); err != nil {
				return nil, err
			}
			if req.CertPEM, err = os.ReadFile(*certFile); err != nil {
				return nil, err
			}
			if *passFile != "" {
				if req.Passphrase, err = readSecret(*passFile); err != nil {
					return nil, err
				}
			}
		default:
			return nil, usageError{"keystore import: give --key and --cert, or --pkcs12 (see 'edgefort keystore import --help')"}
		}
		return importCall(args[0], args[1], req), nil
	})
}

func newTruststoreImportCmd() *command {
	c := &command{
		name:  "import",
		args:  "STORE ALIAS",
		short: "import PEM certificates under an alias",
		long: `Import the certificates of a PEM file into a truststore: all under ALIAS as
one bundle, or with --split one alias per certificate (ALIAS-1, ALIAS-2, …).`,
	}
	certFile := c.fs().String("cert", "", "certificate `FILE` (PEM, one or more certificates)")
	split := c.fs().Bool("split", false, "one alias per certificate")
	return keystoreOp(c, 2, func(args []string) (keystoreCall, error) {
		if *certFile == "" {
			return nil, usageError{"truststore import: --cert is required"}
		}
		data, err := os.ReadFile(*certFile)
		if err != nil {
			return nil, err
		}
		return importCall(args[0], args[1], adminapi.ImportRequest{Kind: keystore.KindTruststore, CertPEM: data, Split: *split}), nil
	})
}

func newStoreListCmd(kind keystore.Kind) *command {
	c := &command{name: "list", short: "list " + string(kind) + "s, their aliases and certificate expiry"}
	fs := c.fs()
	t := addTargetFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		return t.run(ctx, st, func(ctx context.Context, ks adminapi.Keystores, st streams) error {
			list, err := ks.ListStores(ctx, kind)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(st.stdout, list.Stores)
			}
			printStores(st.stdout, list.Stores, time.Now())
			return nil
		})
	}
	return c
}

func printStores(w io.Writer, stores []keystore.StoreInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tALIAS\tSUBJECT\tNOT AFTER\tSTATUS\tREFERENCED BY")
	for _, s := range stores {
		name := s.Name
		if s.Builtin {
			name += " (built-in)"
		}
		refs := strings.Join(s.ReferencedBy, ", ")
		if len(s.Entries) == 0 {
			fmt.Fprintf(tw, "%s\t-\t(empty)\t\t\t%s\n", name, refs)
		}
		for _, e := range s.Entries {
			status := "ok"
			switch {
			case e.Expired:
				status = "EXPIRED"
			case e.Warning != "":
				status = fmt.Sprintf("expires in %dd", int(e.NotAfter.Sub(now).Hours()/24))
			}
			if e.Certificates > 1 {
				status += fmt.Sprintf(" (%d certs)", e.Certificates)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, e.Alias, e.Subject, e.NotAfter.UTC().Format(time.DateOnly), status, refs)
		}
	}
	tw.Flush()
}

func newStoreDeleteCmd(kind keystore.Kind) *command {
	c := &command{
		name:  "delete",
		args:  "NAME [ALIAS]",
		short: "delete a " + string(kind) + ", or one alias of it",
		long:  "Delete a " + string(kind) + " (refused while a reference points at it), or only ALIAS in it.",
	}
	return keystoreOp(c, -1, func(args []string) (keystoreCall, error) {
		switch len(args) {
		case 1:
			return change(func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Change, error) {
				return ks.DeleteStore(ctx, args[0], kind)
			}), nil
		case 2:
			return change(func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Change, error) {
				return ks.DeleteEntry(ctx, args[0], args[1], kind)
			}), nil
		}
		return nil, c.wantArgs(args, 1)
	})
}

func newExportCertCmd() *command {
	c := &command{
		name:  "export-cert",
		args:  "STORE ALIAS",
		short: "print an alias's certificate chain as PEM",
		long:  "Print the certificate chain (leaf first) of ALIAS in a keystore; STORE may be ref://REFERENCE.",
	}
	return keystoreOp(c, 2, func(args []string) (keystoreCall, error) {
		return document(func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Document, error) {
			return ks.Certificates(ctx, args[0], args[1])
		}), nil
	})
}

func newRefCmd() *command {
	set := keystoreOp(&command{
		name:  "set",
		args:  "REF STORE",
		short: "create a reference or repoint it at another store",
		long: `Point ref://REF at STORE. Every listener and client whose TLS settings name
ref://REF uses STORE from its next handshake: no restart, and connections
already open are untouched. A reference keeps its kind (keystore or
truststore).`,
	}, 2, func(args []string) (keystoreCall, error) {
		return change(func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Change, error) {
			return ks.SetRef(ctx, args[0], args[1])
		}), nil
	})
	list := &command{name: "list", short: "list references and the stores they point at"}
	listT := addTargetFlags(list.fs())
	list.exec = func(ctx context.Context, st streams, args []string) error {
		if err := list.wantArgs(args, 0); err != nil {
			return err
		}
		return listT.run(ctx, st, func(ctx context.Context, ks adminapi.Keystores, st streams) error {
			list, err := ks.ListRefs(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(st.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REFERENCE\tSTORE")
			for _, n := range slices.Sorted(maps.Keys(list.Refs)) {
				fmt.Fprintf(tw, "ref://%s\t%s\n", n, list.Refs[n])
			}
			return tw.Flush()
		})
	}
	del := keystoreOp(&command{name: "delete", args: "REF", short: "delete a reference"}, 1, func(args []string) (keystoreCall, error) {
		return change(func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Change, error) {
			return ks.DeleteRef(ctx, args[0])
		}), nil
	})
	return (&command{
		name:  "ref",
		short: "manage references (ref://NAME) to keystores and truststores",
	}).add(set, list, del)
}

// importCall imports req under store/alias.
func importCall(store, alias string, req adminapi.ImportRequest) keystoreCall {
	return change(func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Change, error) {
		return ks.ImportEntry(ctx, store, alias, req)
	})
}

// readSecret reads a passphrase file, without its trailing newline.
func readSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return []byte(strings.TrimRight(string(data), "\r\n")), nil
}
