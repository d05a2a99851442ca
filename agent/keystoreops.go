package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/edgefort/edgefort/keystore"
)

// KeystoreRequest is one operation on the keystores, references or OIDC
// key pairs. The CLI sends it to a running agent over the admin socket, so
// that the change is live at the next handshake, or, when no agent runs,
// performs it directly on the state directory: one code path either way.
type KeystoreRequest struct {
	Op string `json:"op"` // see keystoreOps

	Store       string `json:"store,omitempty"`
	Kind        string `json:"kind,omitempty"`
	Alias       string `json:"alias,omitempty"`
	Ref         string `json:"ref,omitempty"`
	KeyPEM      []byte `json:"key_pem,omitempty"`
	CertPEM     []byte `json:"cert_pem,omitempty"`
	Passphrase  []byte `json:"passphrase,omitempty"`
	PKCS12      []byte `json:"pkcs12,omitempty"`
	Password    string `json:"password,omitempty"`
	Split       bool   `json:"split,omitempty"`
	Bits        int    `json:"bits,omitempty"`
	Which       string `json:"which,omitempty"`
	Format      string `json:"format,omitempty"`
	Token       []byte `json:"token,omitempty"`
	KeepPending bool   `json:"keep_pending,omitempty"`
}

// KeystoreResponse carries whatever the operation returns.
type KeystoreResponse struct {
	Stores   []keystore.StoreInfo   `json:"stores,omitempty"`
	Refs     map[string]string      `json:"refs,omitempty"`
	Aliases  []string               `json:"aliases,omitempty"`
	Warnings []string               `json:"warnings,omitempty"`
	Keys     []keystore.KeyPairInfo `json:"keys,omitempty"`
	Data     string                 `json:"data,omitempty"` // PEM or JSON to print
	Message  string                 `json:"message,omitempty"`
}

// KeystoreService performs KeystoreRequests.
type KeystoreService struct {
	Stores   *keystore.Manager
	KeyPairs *keystore.KeyPairs
}

type keystoreOp func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error)

var keystoreOps = map[string]keystoreOp{
	"store.create": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		if err := s.Stores.CreateStore(r.Store, keystore.Kind(r.Kind)); err != nil {
			return nil, err
		}
		return &KeystoreResponse{Message: fmt.Sprintf("created %s %q", r.Kind, r.Store)}, nil
	},
	"store.delete": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		if err := s.checkKind(r.Store, r.Kind); err != nil {
			return nil, err
		}
		if err := s.Stores.DeleteStore(r.Store); err != nil {
			return nil, err
		}
		return &KeystoreResponse{Message: fmt.Sprintf("deleted %s %q", r.Kind, r.Store)}, nil
	},
	"store.list": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		var out []keystore.StoreInfo
		for _, st := range s.Stores.List() {
			if r.Kind == "" || string(st.Kind) == r.Kind {
				out = append(out, st)
			}
		}
		return &KeystoreResponse{Stores: out, Refs: s.Stores.Refs()}, nil
	},
	"entry.import": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		if err := s.checkKind(r.Store, r.Kind); err != nil {
			return nil, err
		}
		if r.Kind == string(keystore.KindTruststore) {
			aliases, warnings, err := s.Stores.ImportTrusted(r.Store, r.Alias, r.CertPEM, r.Split)
			if err != nil {
				return nil, err
			}
			return &KeystoreResponse{Aliases: aliases, Warnings: warnings, Message: fmt.Sprintf("imported %s into truststore %q", strings.Join(aliases, ", "), r.Store)}, nil
		}
		var warnings []string
		var err error
		if len(r.PKCS12) > 0 {
			warnings, err = s.Stores.ImportPKCS12(r.Store, r.Alias, r.PKCS12, r.Password)
		} else {
			warnings, err = s.Stores.ImportKeyPair(r.Store, r.Alias, r.KeyPEM, r.CertPEM, r.Passphrase)
		}
		if err != nil {
			return nil, err
		}
		return &KeystoreResponse{Aliases: []string{r.Alias}, Warnings: warnings, Message: fmt.Sprintf("imported %q into keystore %q", r.Alias, r.Store)}, nil
	},
	"entry.delete": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		if err := s.Stores.DeleteEntry(r.Store, r.Alias); err != nil {
			return nil, err
		}
		return &KeystoreResponse{Message: fmt.Sprintf("deleted alias %q from %q", r.Alias, r.Store)}, nil
	},
	"entry.cert": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		st, err := s.Stores.Resolve(r.Store, keystore.KindKeystore)
		if err != nil {
			return nil, err
		}
		e, err := st.Entry(r.Alias)
		if err != nil {
			return nil, err
		}
		return &KeystoreResponse{Data: string(keystore.EncodeCerts(e.Chain))}, nil
	},
	"ref.set": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		if err := s.Stores.SetRef(strings.TrimPrefix(r.Ref, keystore.RefScheme), r.Store); err != nil {
			return nil, err
		}
		return &KeystoreResponse{Message: fmt.Sprintf("ref://%s -> %s (in effect from the next handshake)", strings.TrimPrefix(r.Ref, keystore.RefScheme), r.Store)}, nil
	},
	"ref.delete": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		if err := s.Stores.DeleteRef(strings.TrimPrefix(r.Ref, keystore.RefScheme)); err != nil {
			return nil, err
		}
		return &KeystoreResponse{Message: fmt.Sprintf("deleted ref://%s", r.Ref)}, nil
	},
	"ref.list": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		return &KeystoreResponse{Refs: s.Stores.Refs()}, nil
	},
	"keys.generate": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		info, err := s.KeyPairs.Generate(r.Bits)
		if err != nil {
			return nil, err
		}
		msg := fmt.Sprintf("generated RSA-%d key pair %s: %s", info.Bits, info.ID, info.State)
		if info.State == "pending" {
			msg += " (the active pair keeps serving until a token encrypted to this one verifies: edgefort keys verify --token FILE)"
		}
		return &KeystoreResponse{Keys: []keystore.KeyPairInfo{info}, Message: msg}, nil
	},
	"keys.list": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		return &KeystoreResponse{Keys: s.KeyPairs.List()}, nil
	},
	"keys.public": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		var data []byte
		var err error
		switch r.Format {
		case "pem":
			data, err = s.KeyPairs.PublicPEM(r.Which)
		case "cert":
			data, err = s.KeyPairs.CertificatePEM(r.Which)
		case "jwks":
			data, err = s.KeyPairs.JWKS(r.Which)
		default:
			err = fmt.Errorf("format %q: want pem, cert or jwks", r.Format)
		}
		if err != nil {
			return nil, err
		}
		return &KeystoreResponse{Data: string(data)}, nil
	},
	"keys.verify": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		info, err := s.KeyPairs.Verify(r.Token, r.KeepPending)
		if err != nil {
			return nil, err
		}
		return &KeystoreResponse{Keys: []keystore.KeyPairInfo{info}, Message: fmt.Sprintf("verified: key pair %s is now active", info.ID)}, nil
	},
	"keys.delete": func(s *KeystoreService, r *KeystoreRequest) (*KeystoreResponse, error) {
		if err := s.KeyPairs.Delete(r.Which); err != nil {
			return nil, err
		}
		return &KeystoreResponse{Message: fmt.Sprintf("deleted the %s key pair", r.Which)}, nil
	},
}

// Do performs one request.
func (s *KeystoreService) Do(r *KeystoreRequest) (*KeystoreResponse, error) {
	op, ok := keystoreOps[r.Op]
	if !ok {
		return nil, fmt.Errorf("unknown keystore operation %q", r.Op)
	}
	return op(s, r)
}

// checkKind refuses an operation through `edgefort truststore` on a
// keystore and the other way round.
func (s *KeystoreService) checkKind(store, kind string) error {
	if kind == "" {
		return nil
	}
	for _, st := range s.Stores.List() {
		if st.Name == store && string(st.Kind) != kind {
			return fmt.Errorf("%q is a %s, not a %s: %w", store, st.Kind, kind, keystore.ErrWrongKind)
		}
	}
	return nil
}

// handleKeystore serves POST /v1/keystore.
func (s *KeystoreService) handle(w http.ResponseWriter, r *http.Request) {
	var req KeystoreRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&req); err != nil {
		writeJSONError(w, http.StatusBadRequest, fmt.Errorf("decode request: %w", err))
		return
	}
	resp, err := s.Do(&req)
	if err != nil {
		code := http.StatusUnprocessableEntity
		switch {
		case errors.Is(err, keystore.ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, keystore.ErrExists), errors.Is(err, keystore.ErrInUse):
			code = http.StatusConflict
		}
		writeJSONError(w, code, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func writeJSONError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}
