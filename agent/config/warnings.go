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
	return out
}
