package samlauth

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/crewjam/saml"

	"github.com/edgefort/edgefort/internal/httpbody"
)

const maxMetadataBytes = 1 << 20

// idpMetadata is the IdP's metadata, read from a file or URL and read
// again every refresh; a failed refresh keeps the last good copy.
type idpMetadata struct {
	file, url string
	refresh   time.Duration
	client    *http.Client
	now       func() time.Time
	log       *slog.Logger

	mu       sync.Mutex
	md       *saml.EntityDescriptor
	loaded   time.Time // last attempt
	fetching bool
}

// get returns the metadata, loading it first when there is none and
// starting a refresh in the background when it is due.
func (m *idpMetadata) get(ctx context.Context) (*saml.EntityDescriptor, error) {
	m.mu.Lock()
	md, due := m.md, m.now().Sub(m.loaded) >= m.refresh
	if md != nil && due && !m.fetching {
		m.fetching = true
		go m.reload(context.Background())
	}
	m.mu.Unlock()
	if md != nil {
		return md, nil
	}
	return m.reload(ctx)
}

func (m *idpMetadata) reload(ctx context.Context) (*saml.EntityDescriptor, error) {
	md, err := m.read(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fetching = false
	m.loaded = m.now()
	if err != nil {
		if m.md != nil {
			m.log.Warn("saml: IdP metadata refresh failed; keeping the last good copy", "error", err)
			return m.md, nil
		}
		return nil, err
	}
	m.md = md
	return md, nil
}

func (m *idpMetadata) read(ctx context.Context) (*saml.EntityDescriptor, error) {
	var b []byte
	if m.file != "" {
		f, err := os.Open(m.file)
		if err != nil {
			return nil, fmt.Errorf("idp metadata: %w", err)
		}
		defer f.Close()
		b, err = io.ReadAll(io.LimitReader(f, maxMetadataBytes+1))
		if err != nil {
			return nil, fmt.Errorf("idp metadata %s: %w", m.file, err)
		}
		if len(b) > maxMetadataBytes {
			return nil, fmt.Errorf("idp metadata %s is over %d bytes", m.file, maxMetadataBytes)
		}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
		if err != nil {
			return nil, fmt.Errorf("idp metadata: %w", err)
		}
		resp, err := m.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("idp metadata: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("idp metadata %s: status %s", m.url, resp.Status)
		}
		if b, err = httpbody.Read(resp, maxMetadataBytes, "idp metadata"); err != nil {
			return nil, err
		}
	}
	md, err := parseMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("idp metadata: %w", err)
	}
	return md, nil
}

func parseMetadata(b []byte) (*saml.EntityDescriptor, error) {
	var md saml.EntityDescriptor
	if err := xml.Unmarshal(b, &md); err != nil {
		return nil, err
	}
	if len(md.IDPSSODescriptors) == 0 {
		return nil, errors.New("no IDPSSODescriptor (is it an identity provider's metadata?)")
	}
	if _, err := signingCerts(&md); err != nil {
		return nil, err
	}
	return &md, nil
}
