package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// aliasBomb is the shape that took 26 s and 2.6 GB in 32 KiB before the
// node bound: one long list of host names, used through an alias by every
// entry of a list of virtual hosts that are themselves one alias.
func aliasBomb(names, hosts int) []byte {
	var b strings.Builder
	b.WriteString("version: 1\ndevice:\n  hostnames: &h [")
	b.WriteString(strings.Repeat("a,", names))
	b.WriteString("a]\nclients:\n  virtual_hosts:\n    - &v {name: a, listen: ':1', host_aliases: *h}\n")
	b.WriteString(strings.Repeat("    - *v\n", hosts))
	return []byte(b.String())
}

func problemStrings(t *testing.T, err error) []string {
	t.Helper()
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error = %v, want *Error", err)
	}
	var got []string
	for _, p := range cerr.Problems {
		got = append(got, p.String())
	}
	return got
}

// TestAliasBombStopsAtNodeBound: the file is refused with the bound named,
// and the decoder visited exactly one node past it, not the millions the
// aliases expand to.
func TestAliasBombStopsAtNodeBound(t *testing.T) {
	data := aliasBomb(1000, 200) // 201 hosts x 1001 names: 200,000+ nodes in 2.8 KiB
	_, err := Parse("f.yaml", data)
	// The document, version, device, hostnames and its 1,001 names, clients
	// and virtual_hosts are 1,007 nodes; each host 1,005 (its alias, name,
	// listen, host_aliases's alias and the 1,001 names it expands to). The
	// 100,001st is name 499 of host 98.
	want := []string{"f.yaml:3: clients.virtual_hosts[98].host_aliases[499]: the file expands to more than 100000 YAML nodes, counting an alias's whole value at each use; the decoder stops here"}
	if diff := cmp.Diff(want, problemStrings(t, err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}

	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	d := &decoder{probs: &problems{}, lines: map[string]int{}}
	d.decode(root.Content[0], reflect.ValueOf(&Config{}).Elem(), "")
	if !d.stopped || d.nodes != maxNodes+1 {
		t.Errorf("decoder stopped=%v after %d nodes, want stopped after %d", d.stopped, d.nodes, maxNodes+1)
	}
	if len(d.lines) > maxNodes {
		t.Errorf("decoder recorded %d field lines, more than the %d node bound", len(d.lines), maxNodes)
	}
}

// TestAliasesWithinBound: aliases that expand to little still work.
func TestAliasesWithinBound(t *testing.T) {
	cfg, err := Parse("f.yaml", []byte(`version: 1
clients:
  target_endpoints:
    - name: a
      url: https://a.example.com
      ssl: &ssl {truststore: local-ca, common_name: backend.example.com}
    - name: b
      url: https://b.example.com
      ssl: *ssl
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Clients.TargetEndpoints[1].SSL.Truststore; got != "local-ca" {
		t.Errorf("target b truststore = %q, want local-ca (through the alias)", got)
	}
}

func TestHugeValuesAreClipped(t *testing.T) {
	long := strings.Repeat("x", 500_000)
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "value",
			yaml: "version: 1\nlog:\n  level: " + long + "\n",
			want: []string{`f.yaml:3: log.level: "` + long[:maxEcho] + `"... (500000 bytes) is not one of debug, info, warn, error`},
		},
		{
			name: "scalar of the wrong kind",
			yaml: "version: 1\ndevice: " + long + "\n",
			want: []string{`f.yaml:2: device: expected a mapping, got "` + long[:maxEcho] + `"... (500000 bytes)`},
		},
		{
			name: "unknown key",
			// An explicit key: YAML allows a plain one 1024 characters at most.
			yaml: "version: 1\nlog:\n  ? " + long + "\n  : 1\n",
			want: []string{"f.yaml:3: log." + long[:maxEcho-4] + "... (500004 bytes): unknown field (log accepts: format, level)"},
		},
		{
			name: "multi-byte characters are not split",
			yaml: "version: 1\nlog:\n  level: a" + strings.Repeat("é", 100) + "\n",
			want: []string{`f.yaml:3: log.level: "a` + strings.Repeat("é", 63) + `"... (201 bytes) is not one of debug, info, warn, error`},
		},
		{
			name: "a long list of allowed fields is shown whole",
			yaml: "version: 1\nupdates:\n  nope: 1\n",
			want: []string{"f.yaml:3: updates.nope: unknown field (updates accepts: boot_env, download_rate_limit, enabled, fw_env_config, grubenv_dir, health_timeout, inventory, inventory_interval, module_timeout, modules_dir, poll_interval, reboot_command, retry_interval, rootfs_part_a, rootfs_part_b, rootfs_read_back, scripts_dir, server_url, ssl, tenant_token, verify_keys)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if diff := cmp.Diff(tt.want, problemStrings(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTooManyProblems(t *testing.T) {
	_, err := Parse("f.yaml", []byte("version: 1\nupdates:\n  reboot_command: ["+strings.Repeat("[], ", 150)+"[]]\n"))
	got := problemStrings(t, err)
	if len(got) != maxProblems+1 || got[maxProblems] != "f.yaml: 51 more problems not shown" {
		t.Errorf("got %d problems ending %q, want %d and a last line saying 51 more", len(got), got[len(got)-1], maxProblems+1)
	}
}

func TestFileSizeLimit(t *testing.T) {
	dir := t.TempDir()
	// Valid YAML throughout, so only the size can be the problem.
	at := append([]byte("version: 1\n"), []byte(strings.Repeat("#", MaxFileSize-len("version: 1\n")))...)
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{name: "at the limit", data: at},
		{name: "one byte over", data: append(at, '\n'), wantErr: "big.yaml: the file is larger than 1048576 bytes (1 MiB), the limit for a configuration"},
		{name: "far over", data: append(at, make([]byte, 8<<20)...), wantErr: "big.yaml: the file is larger than 1048576 bytes (1 MiB), the limit for a configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "big.yaml")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load = %v, want ok", err)
				}
				return
			}
			if diff := cmp.Diff([]string{strings.Replace(tt.wantErr, "big.yaml", path, 1)}, problemStrings(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAdminAllowList(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "allowed users need a socket outside the state directory",
			yaml: "version: 1\nstate_dir: /var/lib/ef\nadmin:\n  allow_uids: [1000]\n",
			want: []string{`f.yaml:3: admin.socket: "/var/lib/ef/admin.sock" is inside state_dir, which only the agent's user can enter, so allow_uids and allow_gids could not reach it; put the socket elsewhere, e.g. /run/edgefort/admin.sock`},
		},
		{
			name: "ids in range",
			yaml: "version: 1\nadmin:\n  socket: /run/ef/admin.sock\n  allow_uids: [-1, 1000]\n  allow_gids: [4294967295]\n",
			want: []string{
				"f.yaml:4: admin.allow_uids[0]: -1 is not a valid id (0 to 4294967294)",
				"f.yaml:5: admin.allow_gids[0]: 4294967295 is not a valid id (0 to 4294967294)",
			},
		},
		{
			name: "socket directory too long for the private bind name",
			yaml: "version: 1\nadmin:\n  socket: /" + strings.Repeat("d", 95) + "/a\n",
			want: []string{"f.yaml:3: admin.socket: directory is 96 bytes, longer than 92 (the socket is bound under a private name in it first)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if diff := cmp.Diff(tt.want, problemStrings(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
	cfg, err := Parse("f.yaml", []byte("version: 1\nadmin:\n  socket: /run/ef/admin.sock\n  allow_uids: [1000]\n  allow_gids: [0]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Admin{Socket: "/run/ef/admin.sock", AllowUIDs: []int{1000}, AllowGIDs: []int{0}}, cfg.Admin); diff != "" {
		t.Errorf("admin (-want +got):\n%s", diff)
	}
}
