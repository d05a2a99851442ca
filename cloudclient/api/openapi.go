package api

import _ "embed"

// OpenAPI is the contract, controlplane.openapi.yaml: an OpenAPI 3.0
// document a cloud team can implement from alone. Package
// internal/openapitest checks traffic against it in tests.
//
//go:embed controlplane.openapi.yaml
var OpenAPI []byte
