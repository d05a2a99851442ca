package config

import "fmt"

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
	if c.Clients.AuthAPI.Listen != "" && !used {
		out = append(out, c.Problem("clients.auth_api.listen",
			"set, but no virtual host has a ticket or session_module solution: what the API issues authenticates nothing (and without virtual hosts it is not started)"))
	}
	return out
}
