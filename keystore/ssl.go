package keystore

// SSL is the TLS block of the configuration (agent/config composes it),
// shared by virtual hosts (inbound) and target
// endpoints and cloud links (outbound), after the API-gateway model.
type SSL struct {
	// Enabled turns TLS on. Default true for cloud links, false otherwise.
	Enabled *bool `yaml:"enabled"`
	// ClientAuthEnabled requires and verifies client certificates (inbound)
	// or presents one (outbound).
	ClientAuthEnabled bool `yaml:"client_auth_enabled"`
	// Keystore names a keystore directly or as ref://reference.
	Keystore string `yaml:"keystore"`
	// KeyAlias selects the key and certificate in the keystore.
	KeyAlias string `yaml:"key_alias"`
	// Truststore names a truststore directly or as ref://reference.
	Truststore string `yaml:"truststore"`
	// IgnoreValidationErrors accepts a peer whose certificate does not
	// verify. Logged as a warning at every use. Outbound only.
	IgnoreValidationErrors bool `yaml:"ignore_validation_errors"`
	// CommonName is the name the peer's certificate must carry. Outbound
	// only.
	CommonName string `yaml:"common_name"`
	// WildcardMatch lets *.example.com in CommonName match one label.
	WildcardMatch bool `yaml:"wildcard_match"`
	// MinVersion is "1.2" or "1.3". Default "1.2".
	MinVersion string `yaml:"min_version"`
}
