package devcloud

import (
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if p.allowTTL != time.Minute || p.denyTTL != 10*time.Second {
		t.Errorf("TTLs %v, %v", p.allowTTL, p.denyTTL)
	}
	p, err = ParsePolicy([]byte("version: 1\nroles: {r: [a]}\nspaces: {s: {members: {user:u: r}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.allowTTL != DefaultPolicyAllowTTL || p.denyTTL != DefaultPolicyDenyTTL {
		t.Errorf("default TTLs %v, %v", p.allowTTL, p.denyTTL)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // each must appear in the error
	}{
		{"empty", "", []string{"empty document"}},
		{"unknown top-level field", "roles: {}\nspace: {}\n", []string{"line 2", "field space not found"}},
		{"unknown space field", "roles: {r: [a]}\nspaces:\n  s:\n    member: {}\n", []string{"line 4", "field member not found"}},
		{"wrong type", "roles:\n  r: app.read\n", []string{"line 2", "cannot unmarshal"}},
		{"bad duration", "ttl:\n  allow: soon\n", []string{"line 2", `invalid duration "soon"`}},
		{"negative duration", "ttl:\n  deny: -5s\n", []string{"line 2", "invalid duration"}},
		{"bad version", "version: 2\n", []string{"line 1", "unsupported version 2"}},
		{"two documents", "roles: {}\n---\nroles: {}\n", []string{"more than one YAML document"}},
		{"bad action", "roles:\n  r: [app.read, 'a*b']\n", []string{"line 2", `roles.r[1]: invalid action "a*b"`}},
		{"undefined role", "roles:\n  viewer: [app.read]\nspaces:\n  sales:\n    members:\n      user:alice: develper\n", []string{"line 6", `undefined role "develper"`}},
		{"bad member", "roles:\n  viewer: [app.read]\nspaces:\n  sales:\n    members:\n      alice: viewer\n", []string{"line 6", `"alice" is neither user:ID nor group:NAME`}},
		{"every problem", "version: 3\nroles:\n  v: [' ']\nspaces:\n  s:\n    members:\n      x: nope\n", []string{"line 1", "line 3", "line 7", "undefined role", "neither"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(testPolicy))
	f.Add([]byte("roles: {r: ['*']}\nspaces: {s: {members: {group:g: r}}}\n"))
	f.Add([]byte("ttl: {allow: 1h}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			return
		}
		for _, tc := range authorizeCases { // a parsed policy always answers
			d := p.Decide(tc.req)
			if d.Reason == "" || d.TTLSeconds < 0 {
				t.Fatalf("decision %+v", d)
			}
		}
	})
}
