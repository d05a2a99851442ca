package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWarnings(t *testing.T) {
	cfg, err := Parse("f.yaml", []byte(`version: 1
cloud:
  ssl:
    ignore_validation_errors: true
updates:
  ssl: {ignore_validation_errors: false}
clients:
  target_endpoints:
    - name: a
      url: https://a.example.com
    - name: b
      url: https://b.example.com
      ssl:
        ignore_validation_errors: true
  auth_api:
    listen: 127.0.0.1:9443
    ssl: {client_auth_enabled: true, truststore: modules}
  virtual_hosts:
    - name: plain-lan
      listen: [127.0.0.1:8080, 10.0.0.5:8080]
      authentication:
        - jwt: {issuer: https://idp.example, audience: [edgefort], key_files: [/etc/edgefort/idp.pem]}
        - session: {}
        - anonymous: {}
    - name: plain-loopback
      listen: 127.0.0.1:8081
      authentication:
        - jwt: {issuer: https://idp.example, audience: [edgefort], key_files: [/etc/edgefort/idp.pem]}
    - name: plain-anonymous
      listen: 10.0.0.5:8082
      authentication:
        - anonymous: {}
    - name: tls-lan
      listen: 10.0.0.5:8443
      ssl: {enabled: true}
      authentication:
        - jwt: {issuer: https://idp.example, audience: [edgefort], key_files: [/etc/edgefort/idp.pem]}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings() {
		got = append(got, w.String())
	}
	const why = "true: a server whose certificate fails verification is accepted (logged at each such handshake); use it only for testing"
	want := []string{
		"f.yaml:4: cloud.ssl.ignore_validation_errors: " + why,
		"f.yaml:14: clients.target_endpoints[1].ssl.ignore_validation_errors: " + why,
		"f.yaml:19: clients.virtual_hosts[0].ssl.enabled: false, and the virtual host is reachable beyond loopback: the credentials its jwt and session solutions read cross the network in clear text; enable TLS (with no keystore set, the built-in certificate serves)",
		"f.yaml:16: clients.auth_api.listen: set, but no virtual host has a ticket or session_module solution: what the API issues authenticates nothing (and without virtual hosts it is not started)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}
