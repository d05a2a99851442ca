package adminapi

import (
	"context"
	"fmt"
	"strings"

	"github.com/edgefort/edgefort/keystore"
)

// Keystores is every operation on the keystores, truststores, references
// and OIDC key pairs. The adminclient performs them in a running agent
// (live at the next handshake); LocalKeystores performs them in-process.
type Keystores interface {
	// ListStores lists the stores of kind, or all when kind is empty.
	ListStores(ctx context.Context, kind keystore.Kind) (*StoreList, error)
	CreateStore(ctx context.Context, r CreateStoreRequest) (*Change, error)
	// DeleteStore deletes a store; a non-empty kind refuses the other kind.
	DeleteStore(ctx context.Context, name string, kind keystore.Kind) (*Change, error)
	ImportEntry(ctx context.Context, store, alias string, r ImportRequest) (*Change, error)
	DeleteEntry(ctx context.Context, store, alias string, kind keystore.Kind) (*Change, error)
	// Certificates is an alias's chain as PEM; store may be ref://NAME.
	Certificates(ctx context.Context, store, alias string) (*Document, error)
	ListRefs(ctx context.Context) (*RefList, error)
	// SetRef points ref://name (the prefix is optional) at store.
	SetRef(ctx context.Context, name, store string) (*Change, error)
	DeleteRef(ctx context.Context, name string) (*Change, error)
	ListKeyPairs(ctx context.Context) (*KeyPairList, error)
	GenerateKeyPair(ctx context.Context, bits int) (*Change, error)
	// PublicKey is a key pair's public key: format pem, cert or jwks.
	PublicKey(ctx context.Context, which, format string) (*Document, error)
	VerifyKeyPair(ctx context.Context, r VerifyKeyPairRequest) (*Change, error)
	DeleteKeyPair(ctx context.Context, which string) (*Change, error)
}

// LocalKeystores performs the Keystores operations on stores open in this
// process: the agent's routes call it, and so does the CLI when no agent
// runs.
type LocalKeystores struct {
	Stores   *keystore.Manager
	KeyPairs *keystore.KeyPairs
}

var _ Keystores = (*LocalKeystores)(nil)

func (s *LocalKeystores) ListStores(_ context.Context, kind keystore.Kind) (*StoreList, error) {
	out := []keystore.StoreInfo{}
	for _, st := range s.Stores.List() {
		if kind == "" || st.Kind == kind {
			out = append(out, st)
		}
	}
	return &StoreList{Stores: out}, nil
}

func (s *LocalKeystores) CreateStore(_ context.Context, r CreateStoreRequest) (*Change, error) {
	if err := s.Stores.CreateStore(r.Name, r.Kind); err != nil {
		return nil, err
	}
	return &Change{Message: fmt.Sprintf("created %s %q", r.Kind, r.Name)}, nil
}

func (s *LocalKeystores) DeleteStore(_ context.Context, name string, kind keystore.Kind) (*Change, error) {
	if err := s.checkKind(name, kind); err != nil {
		return nil, err
	}
	if err := s.Stores.DeleteStore(name); err != nil {
		return nil, err
	}
	return &Change{Message: fmt.Sprintf("deleted %s %q", kind, name)}, nil
}

func (s *LocalKeystores) ImportEntry(_ context.Context, store, alias string, r ImportRequest) (*Change, error) {
	if err := s.checkKind(store, r.Kind); err != nil {
		return nil, err
	}
	if r.Kind == keystore.KindTruststore {
		aliases, warnings, err := s.Stores.ImportTrusted(store, alias, r.CertPEM, r.Split)
		if err != nil {
			return nil, err
		}
		return &Change{Aliases: aliases, Warnings: warnings, Message: fmt.Sprintf("imported %s into truststore %q", strings.Join(aliases, ", "), store)}, nil
	}
	var warnings []string
	var err error
	if len(r.PKCS12) > 0 {
		warnings, err = s.Stores.ImportPKCS12(store, alias, r.PKCS12, r.Password)
	} else {
		warnings, err = s.Stores.ImportKeyPair(store, alias, r.KeyPEM, r.CertPEM, r.Passphrase)
	}
	if err != nil {
		return nil, err
	}
	return &Change{Aliases: []string{alias}, Warnings: warnings, Message: fmt.Sprintf("imported %q into keystore %q", alias, store)}, nil
}

func (s *LocalKeystores) DeleteEntry(_ context.Context, store, alias string, kind keystore.Kind) (*Change, error) {
	if err := s.checkKind(store, kind); err != nil {
		return nil, err
	}
	if err := s.Stores.DeleteEntry(store, alias); err != nil {
		return nil, err
	}
	return &Change{Message: fmt.Sprintf("deleted alias %q from %q", alias, store)}, nil
}

func (s *LocalKeystores) Certificates(_ context.Context, store, alias string) (*Document, error) {
	st, err := s.Stores.Resolve(store, keystore.KindKeystore)
	if err != nil {
		return nil, err
	}
	e, err := st.Entry(alias)
	if err != nil {
		return nil, err
	}
	return &Document{Data: string(keystore.EncodeCerts(e.Chain))}, nil
}

func (s *LocalKeystores) ListRefs(context.Context) (*RefList, error) {
	refs := s.Stores.Refs()
	if refs == nil {
		refs = map[string]string{}
	}
	return &RefList{Refs: refs}, nil
}

func (s *LocalKeystores) SetRef(_ context.Context, name, store string) (*Change, error) {
	name = strings.TrimPrefix(name, keystore.RefScheme)
	if err := s.Stores.SetRef(name, store); err != nil {
		return nil, err
	}
	return &Change{Message: fmt.Sprintf("ref://%s -> %s (in effect from the next handshake)", name, store)}, nil
}

func (s *LocalKeystores) DeleteRef(_ context.Context, name string) (*Change, error) {
	name = strings.TrimPrefix(name, keystore.RefScheme)
	if err := s.Stores.DeleteRef(name); err != nil {
		return nil, err
	}
	return &Change{Message: fmt.Sprintf("deleted ref://%s", name)}, nil
}

func (s *LocalKeystores) ListKeyPairs(context.Context) (*KeyPairList, error) {
	pairs := s.KeyPairs.List()
	if pairs == nil {
		pairs = []keystore.KeyPairInfo{}
	}
	return &KeyPairList{KeyPairs: pairs}, nil
}

func (s *LocalKeystores) GenerateKeyPair(_ context.Context, bits int) (*Change, error) {
	info, err := s.KeyPairs.Generate(bits)
	if err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("generated RSA-%d key pair %s: %s", info.Bits, info.ID, info.State)
	if info.State == keystore.KeyPairPending {
		msg += " (the active pair keeps serving until a token encrypted to this one verifies: edgefort keys verify --token FILE)"
	}
	return &Change{KeyPair: &info, Message: msg}, nil
}

func (s *LocalKeystores) PublicKey(_ context.Context, which, format string) (*Document, error) {
	var data []byte
	var err error
	switch format {
	case "pem":
		data, err = s.KeyPairs.PublicPEM(which)
	case "cert":
		data, err = s.KeyPairs.CertificatePEM(which)
	case "jwks":
		data, err = s.KeyPairs.JWKS(which)
	default:
		err = BadRequest(fmt.Errorf("format %q: want pem, cert or jwks", format))
	}
	if err != nil {
		return nil, err
	}
	return &Document{Data: string(data)}, nil
}

func (s *LocalKeystores) VerifyKeyPair(_ context.Context, r VerifyKeyPairRequest) (*Change, error) {
	info, err := s.KeyPairs.Verify(r.Token, r.KeepPending)
	if err != nil {
		return nil, err
	}
	return &Change{KeyPair: &info, Message: fmt.Sprintf("verified: key pair %s is now active", info.ID)}, nil
}

func (s *LocalKeystores) DeleteKeyPair(_ context.Context, which string) (*Change, error) {
	if err := s.KeyPairs.Delete(which); err != nil {
		return nil, err
	}
	return &Change{Message: fmt.Sprintf("deleted the %s key pair", which)}, nil
}

// checkKind refuses an operation through `edgefort truststore` on a
// keystore and the other way round.
func (s *LocalKeystores) checkKind(store string, kind keystore.Kind) error {
	if kind == "" {
		return nil
	}
	for _, st := range s.Stores.List() {
		if st.Name == store && st.Kind != kind {
			return fmt.Errorf("%q is a %s, not a %s: %w", store, st.Kind, kind, keystore.ErrWrongKind)
		}
	}
	return nil
}
