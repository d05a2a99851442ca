package config

import (
	"fmt"
	"slices"
)

// Warnings lists settings that are valid but weaken the node, placed in
// the file like problems. It is the one list both `edgefort run` (which
// logs each at start) and `edgefort config validate` (which prints each)
// use, so that a dry run warns about what a real run does.
func (c *Config) Warnings() []Problem {
	var out []Problem
	ssl := func(path string, s SSL) {
		if s.IgnoreValidationErrors {
			out = append(out, c.Problem(path+".ignore_validation_errors",
				"true: a server whose certificate fails verification is accepted (logged at each such handshake); use it only for testing"))
		}
	}
	ssl("cloud.ssl", c.Cloud.SSL)
	ssl("iot.ssl", c.IoT.SSL)
	ssl("updates.ssl", c.Updates.SSL)
	for i, t := range c.Clients.TargetEndpoints {
		ssl(fmt.Sprintf("clients.target_endpoints[%d].ssl", i), t.SSL)
	}
	used := false
	for i, vh := range c.Clients.VirtualHosts {
		for j, s := range vh.Authentication {
			if m := s.SessionModule; m != nil {
				ssl(fmt.Sprintf("clients.virtual_hosts[%d].authentication[%d].session_module.validation_ssl", i, j), m.ValidationSSL)
			}
			used = used || s.Ticket != nil || s.SessionModule != nil
		}
	}
	for i, vh := range c.Clients.VirtualHosts {
		if w := plainCredentials(vh); w != "" {
			out = append(out, c.Problem(fmt.Sprintf("clients.virtual_hosts[%d].ssl.enabled", i), "%s", w))
		}
	}
	if c.Clients.AuthAPI.Listen != "" && !used {
		out = append(out, c.Problem("clients.auth_api.listen",
			"set, but no virtual host has a ticket or session_module solution: what the API issues authenticates nothing (and without virtual hosts it is not started)"))
	}
	return out
}

// plainCredentials warns about a virtual host without TLS, reachable
// beyond loopback, whose solutions read credentials from the request
// (tokens, cookies, tickets, a trusted proxy's headers): they would cross
// the network in clear text. Loopback-only plain HTTP stays quiet: a TLS
// proxy on the same machine may front it.
func plainCredentials(vh VirtualHost) string {
	if IsEnabled(vh.SSL.Enabled, false) || len(vh.Listen) == 0 || !slices.ContainsFunc(vh.Listen, func(a string) bool { return !isLoopback(a) }) {
		return ""
	}
	var kinds []string
	for _, s := range vh.Authentication {
		for _, k := range s.Kinds() {
			if k != "anonymous" && !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	if len(kinds) == 0 {
		return ""
	}
	return fmt.Sprintf("false, and the virtual host is reachable beyond loopback: the credentials its %s solutions read cross the network in clear text; enable TLS (with no keystore set, the built-in certificate serves)", joinKinds(kinds))
}

// joinKinds lists solution kinds for a message: "jwt", "jwt and session",
// "jwt, session and ticket".
func joinKinds(k []string) string {
	if len(k) == 1 {
		return k[0]
	}
	out := ""
	for i, s := range k[:len(k)-1] {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out + " and " + k[len(k)-1]
}
