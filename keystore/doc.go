// Package keystore owns every certificate, private key and trust anchor the
// node uses, after the API-gateway model: named keystores (aliases, each a
// private key and its certificate chain), named truststores (CA and peer
// certificates), and references (ref://NAME) that point at a store and can
// be repointed at run time.
//
// Every TLS connection edgefort makes or accepts gets its tls.Config from
// here. Those configs resolve stores per handshake from an immutable
// snapshot that is swapped atomically on every change, so repointing a
// reference takes effect at the next handshake of every listener and client
// with no restart, no lock and no disk access on the hot path, and
// connections already established are untouched.
//
// The documented way to replace an expiring certificate: create a new
// keystore, import the new key and certificate under the same alias, and
// repoint the reference the TLS settings name.
//
// The package also holds the OIDC token key pairs (RSA keys that identity
// providers encrypt ID tokens to) with their pending/active rotation.
package keystore
