package config

import _ "embed"

// Example is a complete, commented configuration that validates as it is.
//
//go:embed example.yaml
var Example []byte
