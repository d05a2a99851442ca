package main

import (
	"context"
	"fmt"
	"net"
	"text/tabwriter"
	"time"

	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/keystore"
)

func newKeysCmd() *command {
	return (&command{
		name:  "keys",
		short: "manage the OIDC token key pairs (ID tokens encrypted to the node)",
		long: `Manage the RSA key pairs that identity providers encrypt ID tokens to.

Rotation: 'keys generate' makes a new pair PENDING while the active one keeps
serving; give the pending public key to the identity provider, sign in once
to get a token encrypted to it, and 'keys verify --token FILE' makes it
active. A failed verification leaves the active pair in place.

'keys rotate' does the first step and prints what the identity provider
needs and the verification login URL of each virtual host with an oidc
solution: that login makes the pending pair active only if the provider's
ID token decrypts with it.`,
	}).add(newKeysGenerateCmd(), newKeysRotateCmd(), newKeysShowCmd(), newKeysPublicCmd(), newKeysVerifyCmd(), newKeysDeleteCmd())
}

func newKeysGenerateCmd() *command {
	c := &command{name: "generate", short: "generate a key pair (pending if one is active)"}
	typ := c.fs().String("type", "rsa-2048", "key `TYPE`: rsa-2048 or rsa-4096")
	return keystoreOp(c, 0, func([]string) (keystoreCall, error) {
		bits := map[string]int{"rsa-2048": 2048, "rsa-4096": 4096}[*typ]
		if bits == 0 {
			return nil, usageError{fmt.Sprintf("keys generate: --type %q: want rsa-2048 or rsa-4096", *typ)}
		}
		return change(func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Change, error) {
			return ks.GenerateKeyPair(ctx, bits)
		}), nil
	})
}

func newKeysRotateCmd() *command {
	c := &command{name: "rotate", short: "start a rotation: a pending pair, what the identity provider needs, the verification URL"}
	fs := c.fs()
	typ := fs.String("type", "rsa-4096", "key `TYPE`: rsa-2048 or rsa-4096")
	t := addTargetFlags(fs)
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		bits := map[string]int{"rsa-2048": 2048, "rsa-4096": 4096}[*typ]
		if bits == 0 {
			return usageError{fmt.Sprintf("keys rotate: --type %q: want rsa-2048 or rsa-4096", *typ)}
		}
		return t.run(ctx, st, func(ctx context.Context, ks adminapi.Keystores, st streams) error {
			if err := change(func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Change, error) {
				return ks.GenerateKeyPair(ctx, bits)
			})(ctx, ks, st); err != nil {
				return err
			}
			for _, f := range []struct{ format, title string }{
				{"pem", "Public key"}, {"cert", "Certificate"}, {"jwks", "JWKS"},
			} {
				d, err := ks.PublicKey(ctx, keystore.KeyPairPending, f.format)
				if err != nil {
					return err
				}
				fmt.Fprintf(st.stdout, "\n%s (give it to the identity provider):\n%s", f.title, d.Data)
			}
			printVerifyURLs(st, *t.config)
			return nil
		})
	}
	return c
}

// printVerifyURLs prints the verification login URL of every oidc
// solution the configuration file at path has.
func printVerifyURLs(st streams, path string) {
	cfg, err := config.Load(path)
	var urls []string
	if err == nil {
		for _, vh := range cfg.Clients.VirtualHosts {
			host := ""
			if len(vh.HostAliases) > 0 {
				host = vh.HostAliases[0]
				if len(vh.Listen) > 0 {
					if _, port, err := net.SplitHostPort(vh.Listen[0]); err == nil {
						host = net.JoinHostPort(host, port)
					}
				}
			} else if len(vh.Listen) > 0 {
				host = vh.Listen[0]
			}
			scheme := "http"
			if vh.SSL.Enabled != nil && *vh.SSL.Enabled {
				scheme = "https"
			}
			for _, s := range vh.Authentication {
				if s.OIDC != nil {
					urls = append(urls, scheme+"://"+host+s.OIDC.VerifyPath)
				}
			}
		}
	}
	if len(urls) == 0 {
		fmt.Fprintln(st.stdout, "\nNo virtual host has an oidc solution: sign in once to get a token encrypted to the pending key, then run 'edgefort keys verify --token FILE'.")
		return
	}
	fmt.Fprintln(st.stdout, "\nOnce the identity provider encrypts to the pending key, open the verification login (it makes the pending pair active; on failure the active pair stays):")
	for _, u := range urls {
		fmt.Fprintln(st.stdout, "  "+u)
	}
}

func newKeysShowCmd() *command {
	c := &command{name: "show", short: "show the active and pending key pairs with fingerprints"}
	fs := c.fs()
	t := addTargetFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	c.exec = func(ctx context.Context, st streams, args []string) error {
		if err := c.wantArgs(args, 0); err != nil {
			return err
		}
		return t.run(ctx, st, func(ctx context.Context, ks adminapi.Keystores, st streams) error {
			list, err := ks.ListKeyPairs(ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(st.stdout, list.KeyPairs)
			}
			if len(list.KeyPairs) == 0 {
				fmt.Fprintln(st.stdout, "no key pairs; create one with 'edgefort keys generate'")
				return nil
			}
			tw := tabwriter.NewWriter(st.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STATE\tKID\tBITS\tCREATED\tSHA-256 FINGERPRINT")
			for _, k := range list.KeyPairs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", k.State, k.ID, k.Bits, k.Created.UTC().Format(time.RFC3339), k.Fingerprint)
			}
			return tw.Flush()
		})
	}
	return c
}

func newKeysPublicCmd() *command {
	c := &command{name: "public", short: "print a public key as PEM, a self-signed certificate, or JWKS"}
	format := c.fs().String("format", "pem", "`FORMAT`: pem, cert or jwks")
	which := c.fs().String("which", "active", "`PAIR`: active or pending (jwks: empty for both)")
	return keystoreOp(c, 0, func([]string) (keystoreCall, error) {
		return document(func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Document, error) {
			return ks.PublicKey(ctx, *which, *format)
		}), nil
	})
}

func newKeysVerifyCmd() *command {
	c := &command{
		name:  "verify",
		short: "verify the pending pair with a token encrypted to it, and make it active",
		long: `Decrypt a token (compact JWE) with the pending key pair. On success the
pending pair becomes active and the old one is deleted. On failure the active
pair stays; the pending one is discarded unless --keep-pending.`,
	}
	token := c.fs().String("token", "", "`FILE` holding the encrypted ID token")
	keep := c.fs().Bool("keep-pending", false, "keep the pending pair if verification fails")
	return keystoreOp(c, 0, func([]string) (keystoreCall, error) {
		if *token == "" {
			return nil, usageError{"keys verify: --token is required"}
		}
		data, err := readSecret(*token)
		if err != nil {
			return nil, err
		}
		return change(func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Change, error) {
			return ks.VerifyKeyPair(ctx, adminapi.VerifyKeyPairRequest{Token: data, KeepPending: *keep})
		}), nil
	})
}

func newKeysDeleteCmd() *command {
	c := &command{name: "delete", short: "delete the pending or the active key pair"}
	which := c.fs().String("which", "pending", "`PAIR`: pending or active")
	return keystoreOp(c, 0, func([]string) (keystoreCall, error) {
		return change(func(ctx context.Context, ks adminapi.Keystores) (*adminapi.Change, error) {
			return ks.DeleteKeyPair(ctx, *which)
		}), nil
	})
}
