package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestExampleValidates(t *testing.T) {
	for name, data := range map[string][]byte{"as printed": Example, "with the marked lines": fullExample(t)} {
		if _, err := Parse("example.yaml", data); err != nil {
			t.Errorf("the example %s does not validate:\n%v", name, err)
		}
	}
}

// fullExample is the example with the "#| " lines (settings for parts not
// yet built) put in place of the empty lists they stand for.
func fullExample(t *testing.T) []byte {
	t.Helper()
	s := string(Example)
	for _, empty := range []string{"  virtual_hosts: []\n", "  target_endpoints: []\n", "  auth_api: {}\n", "  references: {}\n"} {
		if !strings.Contains(s, empty) {
			t.Fatalf("example lost %q", empty)
		}
		s = strings.Replace(s, empty, "", 1)
	}
	// The marked virtual host has routes, which the control plane
	// authorizes.
	s = strings.Replace(s, "cloud:\n  enabled: false", "cloud:\n  enabled: true", 1)
	return []byte(strings.ReplaceAll(s, "#| ", ""))
}

// TestExampleIsComplete keeps the example honest: every field a user can
// set appears in it, so a field added to Config without documentation there
// fails here.
func TestExampleIsComplete(t *testing.T) {
	_, lines, probs := decodeFile(fullExample(t))
	if len(probs.list) > 0 {
		t.Fatalf("decode example: %v", probs.list)
	}
	// Outbound-only settings that a virtual host rejects.
	inboundOnly := map[string]bool{
		"clients.virtual_hosts[0].ssl.ignore_validation_errors": true,
		"clients.virtual_hosts[0].ssl.common_name":              true,
		"clients.virtual_hosts[0].ssl.wildcard_match":           true,
		"clients.auth_api.ssl.ignore_validation_errors":         true,
		"clients.auth_api.ssl.common_name":                      true,
		"clients.auth_api.ssl.wildcard_match":                   true,
	}
	// A chain entry sets one kind each: the example shows them in turn.
	shown := func(path string) bool {
		for i := range 8 {
			if _, ok := lines[strings.Replace(path, "authentication[0]", index("authentication", i), 1)]; ok {
				return true
			}
		}
		return false
	}
	for _, path := range fieldPaths(reflect.TypeFor[Config](), "") {
		if !shown(path) && !inboundOnly[path] {
			t.Errorf("example.yaml does not show %s", path)
		}
	}
}

// fieldPaths lists every settable path of t; list elements are expected at
// index 0 and map contents are not descended into.
func fieldPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		path := join(prefix, name)
		out = append(out, path)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]():
			out = append(out, fieldPaths(ft, path)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, fieldPaths(ft.Elem(), index(path, 0))...)
		}
	}
	return out
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("min.yaml", []byte("version: 1\ndevice: {id: node-7}\n"))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"state_dir", cfg.StateDir, DefaultStateDir},
		{"admin.socket", cfg.Admin.Socket, "/var/lib/edgefort/admin.sock"},
		{"metrics.enabled", *cfg.Metrics.Enabled, true},
		{"metrics.listen", cfg.Metrics.Listen, DefaultMetricsListen},
		{"log.level", cfg.Log.Level, "info"},
		{"supervisor.shutdown_timeout", cfg.Supervisor.ShutdownTimeout, 10 * time.Second},
		{"iot.thing_name", cfg.IoT.ThingName, "node-7"},
		{"iot.events_topic", cfg.IoT.EventsTopic, "edgefort/node-7/events"},
		{"iot.reconnect_spread", cfg.IoT.ReconnectSpread, 40 * time.Second},
		{"updates.poll_interval", cfg.Updates.PollInterval, 30 * time.Minute},
		{"cloud.ssl.enabled", *cfg.Cloud.SSL.Enabled, true},
		{"cloud.authorization.when_unreachable", cfg.Cloud.Authorization.WhenUnreachable, FailClosed},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	cfg, err = Parse("dir.yaml", []byte("version: 1\nstate_dir: /srv/ef\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Socket != "/srv/ef/admin.sock" {
		t.Errorf("admin.socket = %q, want it under state_dir", cfg.Admin.Socket)
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "unknown field, wrong type and out-of-range port at once",
			yaml: `version: 1
log:
  levle: debug
supervisor:
  shutdown_timeout: soon
metrics:
  listen: 127.0.0.1:99999
`,
			want: []string{
				"f.yaml:3: log.levle: unknown field (log accepts: format, level)",
				`f.yaml:5: supervisor.shutdown_timeout: expected a duration such as 30s, 5m or 1h30m, got "soon"`,
				`f.yaml:7: metrics.listen: port "99999" is out of range (0 to 65535)`,
			},
		},
		{
			name: "missing version names line 1",
			yaml: "log: {level: info}\n",
			want: []string{"f.yaml:1: version: required; this build reads version 1"},
		},
		{
			name: "wrong types",
			yaml: "version: one\nmetrics:\n  enabled: yes\ndevice: [a]\ncloud:\n  authorization:\n    cache_size: 1.5\n",
			want: []string{
				`f.yaml:1: version: expected an integer, got "one"`,
				`f.yaml:3: metrics.enabled: expected true or false, got "yes"`,
				"f.yaml:4: device: expected a mapping, got a list",
				`f.yaml:7: cloud.authorization.cache_size: expected an integer, got "1.5"`,
			},
		},
		{
			name: "missing required fields point at their section",
			yaml: "version: 1\nupdates:\n  enabled: true\niot:\n  enabled: true\n",
			want: []string{
				"f.yaml:1: device.device_type: required when updates are enabled (artifacts name the device types they install on)",
				"f.yaml:2: updates.server_url: required",
				"f.yaml:4: iot.endpoint: required when iot is enabled (the account's ATS endpoint, e.g. abc123-ats.iot.eu-west-1.amazonaws.com)",
				"f.yaml:4: iot.region: required when iot is enabled",
				"f.yaml:4: iot.thing_name: required when iot is enabled and device.id is empty",
			},
		},
		{
			name: "rootfs A/B pair",
			yaml: "version: 1\nupdates:\n  rootfs_part_a: /dev/mmcblk0p2\n  rootfs_part_b: mmcblk0p3\n  boot_env: lilo\n  fw_env_config: fw_env.config\n",
			want: []string{
				"f.yaml:2: updates.reboot_command: required with rootfs_part_a and rootfs_part_b: a root filesystem update boots the new partition",
				`f.yaml:4: updates.rootfs_part_b: "mmcblk0p3" must be an absolute path`,
				`f.yaml:5: updates.boot_env: "lilo" is not one of uboot, grub`,
				`f.yaml:6: updates.fw_env_config: "fw_env.config" must be an absolute path`,
			},
		},
		{
			name: "rootfs half a pair, no number, the same twice",
			yaml: "version: 1\nupdates:\n  rootfs_part_a: /dev/sda\n  boot_env: grub\n  reboot_command: [/sbin/reboot]\n",
			want: []string{
				"f.yaml:2: updates.rootfs_part_b: required when the other partition of the A/B pair is set",
				`f.yaml:3: updates.rootfs_part_a: "/dev/sda" does not end in a partition number (the boot loader selects the partition by it, e.g. /dev/mmcblk0p2)`,
			},
		},
		{
			name: "rootfs the same partition twice, boot_env alone",
			yaml: "version: 1\nupdates:\n  rootfs_part_a: /dev/sda2\n  rootfs_part_b: /dev/sda2\n  boot_env: uboot\n  reboot_command: [/sbin/reboot]\n",
			want: []string{
				`f.yaml:4: updates.rootfs_part_b: "/dev/sda2" is rootfs_part_a as well; the A/B pair needs two partitions`,
			},
		},
		{
			name: "boot_env without partitions",
			yaml: "version: 1\nupdates:\n  boot_env: grub\n",
			want: []string{
				`f.yaml:3: updates.boot_env: "grub" is set but rootfs_part_a and rootfs_part_b are not; set both for rootfs-image updates`,
			},
		},
		{
			name: "reconnect spread beyond the max",
			yaml: "version: 1\ndevice: {id: n}\niot:\n  enabled: true\n  endpoint: a-ats.iot.eu-west-1.amazonaws.com\n  region: eu-west-1\n  reconnect_max: 1m\n  reconnect_spread: 90s\n",
			want: []string{
				"f.yaml:8: iot.reconnect_spread: 1m30s is out of range (1s to 1m0s)",
			},
		},
		{
			name: "bad addresses",
			yaml: "version: 1\nmetrics:\n  listen: 10.0.0.5:9273\nclients:\n  virtual_hosts:\n    - name: a\n      listen: nohostport\n    - name: b\n      listen: 'bad host!:443'\n",
			want: []string{
				`f.yaml:3: metrics.listen: "10.0.0.5:9273" is not a loopback address; metrics stay on the node unless allow_non_loopback is true`,
				`f.yaml:7: clients.virtual_hosts[0].listen: "nohostport" is not host:port (missing port in address)`,
				`f.yaml:9: clients.virtual_hosts[1].listen: "bad host!" is not an IP address or host name`,
			},
		},
		{
			name: "ssl rules by direction",
			yaml: `version: 1
clients:
  virtual_hosts:
    - name: v
      listen: 127.0.0.1:8443
      ssl:
        keystore: "{ssl.keystore}"
        common_name: x.example.com
        client_auth_enabled: true
  target_endpoints:
    - name: t
      url: http://127.0.0.1:80
      ssl:
        enabled: true
        keystore: "{ssl.keystore}"
        wildcard_match: true
        min_version: "1.1"
    - name: t
      url: ftp://x
`,
			want: []string{
				`f.yaml:6: clients.virtual_hosts[0].ssl.truststore: required when client_auth_enabled is true (client certificates are verified against it)`,
				`f.yaml:7: clients.virtual_hosts[0].ssl.keystore: "{ssl.keystore}": variables are allowed only on target endpoints, and only {ssl.keystore}`,
				`f.yaml:8: clients.virtual_hosts[0].ssl.common_name: only target endpoints check a peer's common name; remove it from the virtual host`,
				`f.yaml:14: clients.target_endpoints[0].ssl.enabled: TLS is enabled but the url is http://; use https://`,
				`f.yaml:16: clients.target_endpoints[0].ssl.wildcard_match: set, but common_name is empty`,
				`f.yaml:17: clients.target_endpoints[0].ssl.min_version: "1.1" is not one of 1.2, 1.3`,
				`f.yaml:18: clients.target_endpoints[1].name: "t" is used twice`,
				`f.yaml:19: clients.target_endpoints[1].url: "ftp://x" must be an http or https URL with a host`,
			},
		},
		{
			name: "client routes, solutions and listeners",
			yaml: `version: 1
clients:
  virtual_hosts:
    - name: v
      listen: [127.0.0.1:8443, ":9443"]
      trusted_proxies: [10.0.0.0/8, nope]
      failed_auth_limit: {per_second: 0.5, burst: -1}
      timeouts: {drain: 10s}
      authentication:
        - {}
        - anonymous: {}
          jwt: {issuer: x}
      identity:
        headers: {user_id: "bad header"}
      routes:
        - name: r
          match: "GET /apps/{app}/"
          target: nowhere
          action: ""
          resource: {type: app, id: "{space}"}
        - name: r
          match: "BREW /"
          target: t
          action: a
          resource: {type: app}
    - name: w
      listen: 127.0.0.1:8443
  target_endpoints:
    - {name: t, url: "http://127.0.0.1:80"}
`,
			want: []string{
				`f.yaml:5: clients.virtual_hosts[0].listen[1]: ":9443" binds every interface; name the private network's address, or set allow_wildcard: true`,
				`f.yaml:6: clients.virtual_hosts[0].trusted_proxies[1]: "nope" is not a CIDR such as 10.0.0.0/8 or an address`,
				`f.yaml:7: clients.virtual_hosts[0].failed_auth_limit.burst: -1 is out of range (1 to 1000000)`,
				`f.yaml:8: clients.virtual_hosts[0].timeouts.drain: 10s is not shorter than supervisor.shutdown_timeout (10s), which bounds the whole stop`,
				`f.yaml:10: clients.virtual_hosts[0].authentication[0]: set exactly one solution: jwt, anonymous, header, session, ticket, session_module, saml or oidc`,
				`f.yaml:11: clients.virtual_hosts[0].authentication[1]: set exactly one solution: jwt, anonymous, header, session, ticket, session_module, saml or oidc`,
				`f.yaml:14: clients.virtual_hosts[0].identity.headers.user_id: "bad header" is not a valid header name`,
				`f.yaml:15: clients.virtual_hosts[0].routes: routes are authorized by the control plane, which is off; set cloud.enabled: true`,
				`f.yaml:17: clients.virtual_hosts[0].routes[0].match: resource uses {space}, which the pattern "GET /apps/{app}/" does not have`,
				`f.yaml:18: clients.virtual_hosts[0].routes[0].target: no target endpoint named "nowhere" in clients.target_endpoints`,
				`f.yaml:19: clients.virtual_hosts[0].routes[0].action: required: the action authorization is asked for, e.g. app.read`,
				`f.yaml:21: clients.virtual_hosts[0].routes[1].name: "r" is used twice`,
				`f.yaml:27: clients.virtual_hosts[1].listen: "127.0.0.1:8443" is already the address of virtual host "v"`,
			},
		},
		{
			name: "header solutions",
			yaml: `version: 1
clients:
  virtual_hosts:
    - name: v
      listen: 127.0.0.1:8443
      authentication:
        - header: {user_header: Cookie, groups_header: "X Groups", trusted_proxies: [0.0.0.0/0, proxy.example]}
        - header: {trusted_proxies: []}
        - header: {user_header: X-Remote-User, trusted_proxies: [10.0.0.7]}
          anonymous: {}
        - header: {user_header: X-Remote-User, directory: "a\tb", trusted_proxies: [10.0.0.7]}
      identity:
        headers: {anonymous: "bad header"}
`,
			want: []string{
				`f.yaml:7: clients.virtual_hosts[0].authentication[0].header.user_header: "Cookie" is a header HTTP needs; it cannot carry the user (it is removed from every request)`,
				`f.yaml:7: clients.virtual_hosts[0].authentication[0].header.groups_header: "X Groups" is not a valid header name`,
				`f.yaml:7: clients.virtual_hosts[0].authentication[0].header.trusted_proxies[0]: "0.0.0.0/0" trusts every address; name the proxies`,
				`f.yaml:7: clients.virtual_hosts[0].authentication[0].header.trusted_proxies[1]: "proxy.example" is not a CIDR such as 10.0.0.7/32 or an address`,
				`f.yaml:8: clients.virtual_hosts[0].authentication[1].header.user_header: required: the header the trusted proxy names the user in, e.g. X-Remote-User`,
				`f.yaml:8: clients.virtual_hosts[0].authentication[1].header.trusted_proxies: required: the addresses of the proxies that may send the user headers, e.g. [10.0.0.7/32]`,
				`f.yaml:9: clients.virtual_hosts[0].authentication[2]: set exactly one solution: jwt, anonymous, header, session, ticket, session_module, saml or oidc`,
				`f.yaml:11: clients.virtual_hosts[0].authentication[3].header.directory: not valid UTF-8, or has control characters`,
				`f.yaml:13: clients.virtual_hosts[0].identity.headers.anonymous: "bad header" is not a valid header name`,
			},
		},
		{
			name: "authentication API",
			yaml: `version: 1
clients:
  auth_api:
    listen: 127.0.0.1:9443
    ssl: {keystore: nope}
    tickets: {ttl: 1h}
  virtual_hosts:
    - name: v
      listen: 127.0.0.1:8443
      authentication:
        - ticket: {query_parameter: "a b", module_url: "//login", allowed_redirects: ["https://x/path"]}
        - session_module: {cookie: ""}
`,
			want: []string{
				`f.yaml:5: clients.auth_api.ssl.client_auth_enabled: must be true: the authentication API is two-way TLS only`,
				`f.yaml:5: clients.auth_api.ssl.truststore: required: the client certificates of the authentication modules are verified against it`,
				`f.yaml:6: clients.auth_api.tickets.ttl: 1h0m0s is out of range (1s to 10m)`,
				`f.yaml:11: clients.virtual_hosts[0].authentication[0].ticket.query_parameter: "a b" is not a query parameter name (letters, digits, _.~-; at most 64)`,
				`f.yaml:11: clients.virtual_hosts[0].authentication[0].ticket.module_url: "//login" is not an http(s) URL with a host (and no user or fragment)`,
				`f.yaml:11: clients.virtual_hosts[0].authentication[0].ticket.allowed_redirects[0]: "https://x/path" is not an origin such as https://portal.example.com`,
				`f.yaml:11: clients.virtual_hosts[0].authentication[0].ticket: a ticket login opens one of the node's sessions: add a session solution (- session: {}) to this chain`,
				`f.yaml:12: clients.virtual_hosts[0].authentication[1].session_module.cookie: "" is not a cookie name (letters, digits, !#$%&'*+-.^_` + "`" + `|~; at most 64)`,
			},
		},
		{
			name: "saml solutions",
			yaml: `version: 1
clients:
  virtual_hosts:
    - name: v
      listen: 127.0.0.1:8443
      authentication:
        - saml: {base_url: "https://h.example/x", idp_metadata_file: /m.xml}
        - saml: {name: b, base_url: "https://h.example", idp_metadata_file: /m.xml, sign_requests: true}
        - saml: {name: c, base_url: "https://h.example", idp_metadata_file: /m.xml, idp_metadata_url: "https://i.example/md", path_prefix: /c}
`,
			want: []string{
				`f.yaml:7: clients.virtual_hosts[0].authentication[0].saml.base_url: "https://h.example/x" is not scheme://host[:port]`,
				`f.yaml:7: clients.virtual_hosts[0].authentication[0].saml: a saml login opens one of the node's sessions: add a session solution (- session: {}) to this chain`,
				`f.yaml:8: clients.virtual_hosts[0].authentication[1].saml.path_prefix: "/.edgefort/saml" is also authentication[0]'s: give each SAML solution its own`,
				`f.yaml:8: clients.virtual_hosts[0].authentication[1].saml.sign_requests: needs keystore (the key requests are signed with)`,
				`f.yaml:8: clients.virtual_hosts[0].authentication[1].saml: a saml login opens one of the node's sessions: add a session solution (- session: {}) to this chain`,
				`f.yaml:9: clients.virtual_hosts[0].authentication[2].saml.idp_metadata_file: set exactly one of idp_metadata_file and idp_metadata_url`,
				`f.yaml:9: clients.virtual_hosts[0].authentication[2].saml: a saml login opens one of the node's sessions: add a session solution (- session: {}) to this chain`,
			},
		},
		{
			name: "saml single logout, display names, oidc paths",
			yaml: `version: 1
clients:
  virtual_hosts:
    - name: v
      listen: 127.0.0.1:8443
      authentication:
        - session: {}
        - saml: {base_url: "https://h.example", idp_metadata_file: /m.xml, single_logout: true}
        - oidc: {issuer: "https://i.example", client_id: e, client_secret: s, display_name: "a\tb"}
        - oidc: {name: o2, issuer: "https://i.example", client_id: e, client_secret: s, callback_path: /cb2}
`,
			want: []string{
				`f.yaml:8: clients.virtual_hosts[0].authentication[1].saml.single_logout: needs keystore (the key logout messages are signed with)`,
				`f.yaml:9: clients.virtual_hosts[0].authentication[2].oidc.display_name: "a\tb": at most 100 characters, no control characters`,
				`f.yaml:10: clients.virtual_hosts[0].authentication[3].oidc.login_path: "/.edgefort/oidc/login" is also authentication[2]'s: give each OIDC solution its own paths`,
				`f.yaml:10: clients.virtual_hosts[0].authentication[3].oidc.verify_path: "/.edgefort/oidc/verify" is also authentication[2]'s: give each OIDC solution its own paths`,
				`f.yaml:10: clients.virtual_hosts[0].authentication[3].oidc.jwks_path: "/.edgefort/oidc/jwks.json" is also authentication[2]'s: give each OIDC solution its own paths`,
			},
		},
		{
			name: "duplicate key",
			yaml: "version: 1\nlog:\n  level: info\n  level: debug\n",
			want: []string{"f.yaml:4: log.level: field set twice (first on line 3)"},
		},
		{
			name: "session solution",
			yaml: `version: 1
clients:
  virtual_hosts:
    - name: v
      listen: 127.0.0.1:8443
      authentication:
        - session: {same_site: none, cookie: "a b"}
        - session: {idle_timeout: 9h}
`,
			want: []string{
				`f.yaml:7: clients.virtual_hosts[0].authentication[0].session.cookie: "a b" is not a cookie name (letters, digits and -._ only, at most 128)`,
				`f.yaml:7: clients.virtual_hosts[0].authentication[0].session.same_site: "none" is not lax or strict`,
				`f.yaml:8: clients.virtual_hosts[0].authentication[1].session: a virtual host has one session solution (one cookie)`,
				`f.yaml:8: clients.virtual_hosts[0].authentication[1].session.idle_timeout: 9h0m0s is longer than absolute_timeout 8h0m0s`,
			},
		},
		{
			name: "syntax error",
			yaml: "version: 1\nlog:\n  level: [info\n",
			want: []string{"f.yaml:2: invalid YAML: did not find expected ',' or ']'"},
		},
		{
			name: "empty file",
			yaml: "",
			want: []string{"f.yaml:1: the file is empty; start from `edgefort config example`"},
		},
		{
			name: "two documents",
			yaml: "version: 1\n---\nversion: 1\n",
			want: []string{"f.yaml:2: a second YAML document follows the first; one file holds one configuration"},
		},
		{
			name: "reference to a reference",
			yaml: "version: 1\nkeystores:\n  references:\n    a: ref://b\n",
			want: []string{`f.yaml:4: keystores.references.a: "ref://b": a reference points at a keystore or truststore, not at another reference`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Parse error = %v, want *Error", err)
			}
			var got []string
			for _, p := range cerr.Problems {
				got = append(got, p.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, ErrNoConfig) {
		t.Fatalf("Load of a missing file = %v, want ErrNoConfig", err)
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edgefort.yaml")
	if err := os.WriteFile(path, fullExample(t), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Clients.TargetEndpoints[0].SSL.CommonName; got != "localhost" {
		t.Errorf("target common_name = %q, want localhost", got)
	}
}

// FuzzParse runs every input through the whole path Load takes (decode,
// defaults, validation): it must never panic, must answer a config or an
// *Error, and the error must stay small whatever the input (clipped
// values, a bounded number of problems). scripts/test.sh runs it briefly.
func FuzzParse(f *testing.F) {
	f.Add(Example)
	f.Add([]byte("version: 1\nclients: {virtual_hosts: [{name: a, listen: ':1'}]}\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add(aliasBomb(100, 20))
	f.Add([]byte("version: 1\nupdates: &x {inventory: *x}\n"))
	f.Add([]byte("version: 1\nlog:\n  level: " + strings.Repeat("x", 2000) + "\n"))
	f.Add([]byte("version: 1\n---\nversion: 1\n"))
	f.Add([]byte("version: 1\nadmin: {socket: /run/a.sock, allow_uids: [0, -1], allow_gids: [1]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned cfg=%v err=%v; want exactly one", cfg, err)
		}
		if err == nil {
			return
		}
		var cerr *Error
		if !errors.As(err, &cerr) {
			t.Fatalf("Parse error %v is not an *Error", err)
		}
		if len(cerr.Problems) == 0 || len(cerr.Problems) > maxProblems+1 {
			t.Fatalf("an *Error with %d problems", len(cerr.Problems))
		}
		for _, p := range cerr.Problems {
			if n := len(p.String()); n > 1024 {
				t.Fatalf("a problem of %d bytes: %.300s", n, p)
			}
		}
	})
}
