package clientapi

import "github.com/edgefort/edgefort/keystore"

// VirtualHost is one inbound listener: the configuration's
// clients.virtual_hosts entry (agent/config composes it).
type VirtualHost struct {
	// Name identifies the virtual host. Required, unique.
	Name string `yaml:"name"`
	// Listen is host:port on the private network. Required.
	Listen string `yaml:"listen"`
	// HostAliases are the Host header values this virtual host answers.
	// Empty answers any.
	HostAliases []string `yaml:"host_aliases"`
	// SSL is the inbound TLS block.
	SSL keystore.SSL `yaml:"ssl"`
}
