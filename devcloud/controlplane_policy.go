package devcloud

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgefort/edgefort/cloudclient/api"
)

// A Policy is the authorization settings of spaces, as the cloud keeps
// them. ParsePolicy reads it from YAML:
//
//	version: 1                      # optional; 1 is the only version
//	ttl:                            # how long nodes may cache decisions
//	  allow: 60s                    # zero or absent: 60s
//	  deny: 10s                     # zero or absent: 10s
//	roles:                          # role → actions it grants
//	  viewer: [app.read]
//	  developer: [app.read, app.reload]
//	  admin: ["*"]                  # "*" grants everything; "app.*" every app.X
//	groups:                         # static group membership (user IDs), on
//	  analysts: [alice, bob]        # top of the groups the user arrives with
//	spaces:
//	  sales:
//	    members:                    # "user:ID" or "group:NAME" → role
//	      user:alice: developer
//	      group:analysts: viewer
//
// A resource of type "app" is in its Resource.Space; a "space" resource is
// the space itself. A user may act when a role they hold in that space,
// directly or through a group, grants the action. User IDs match whatever
// the user's directory.
type Policy struct {
	allowTTL, denyTTL time.Duration
	roles             map[string][]string          // role → actions
	groups            map[string][]string          // group → user IDs
	spaces            map[string]map[string]string // space → member → role
}

// Default decision TTLs of a policy.
const (
	DefaultPolicyAllowTTL = 60 * time.Second
	DefaultPolicyDenyTTL  = 10 * time.Second
)

// policyFile is the YAML shape of a Policy.
type policyFile struct {
	Version int `yaml:"version"`
	TTL     struct {
		Allow policyDuration `yaml:"allow"`
		Deny  policyDuration `yaml:"deny"`
	} `yaml:"ttl"`
	Roles  map[string][]string `yaml:"roles"`
	Groups map[string][]string `yaml:"groups"`
	Spaces map[string]struct {
		Members map[string]string `yaml:"members"`
	} `yaml:"spaces"`
}

// policyDuration is a Go duration string ("60s") in YAML.
type policyDuration time.Duration

func (d *policyDuration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: invalid duration %q (want e.g. 60s)", n.Line, s)
	}
	*d = policyDuration(v)
	return nil
}

// ParsePolicy reads a policy from YAML strictly: unknown fields, trailing
// documents, undefined roles and malformed members are errors, each
// naming its line.
func ParsePolicy(data []byte) (*Policy, error) {
	var f policyFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("policy: empty document")
		}
		return nil, fmt.Errorf("policy: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("policy: line %d: more than one YAML document", extra.Line)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	at := func(path ...string) int { return lineOf(&root, path...) }

	var errs []error
	bad := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("policy: line %d: %s", line, fmt.Sprintf(format, args...)))
	}
	if f.Version != 0 && f.Version != 1 {
		bad(at("version"), "version: unsupported version %d (want 1)", f.Version)
	}
	for _, role := range sortedKeys(f.Roles) {
		for i, a := range f.Roles[role] {
			if a == "" || strings.Contains(a, " ") || (strings.Contains(a, "*") && a != "*" && !strings.HasSuffix(a, ".*")) {
				bad(at("roles", role), "roles.%s[%d]: invalid action %q", role, i, a)
			}
		}
	}
	for _, g := range sortedKeys(f.Groups) {
		for i, u := range f.Groups[g] {
			if u == "" {
				bad(at("groups", g), "groups.%s[%d]: empty user ID", g, i)
			}
		}
	}
	p := &Policy{
		allowTTL: time.Duration(f.TTL.Allow),
		denyTTL:  time.Duration(f.TTL.Deny),
		roles:    f.Roles,
		groups:   f.Groups,
		spaces:   make(map[string]map[string]string),
	}
	for _, sp := range sortedKeys(f.Spaces) {
		members := f.Spaces[sp].Members
		for _, m := range sortedKeys(members) {
			kind, name, _ := strings.Cut(m, ":")
			if (kind != "user" && kind != "group") || name == "" {
				bad(at("spaces", sp, "members", m), "spaces.%s.members: %q is neither user:ID nor group:NAME", sp, m)
			}
			if _, ok := f.Roles[members[m]]; !ok {
				bad(at("spaces", sp, "members", m), "spaces.%s.members[%q]: undefined role %q", sp, m, members[m])
			}
		}
		p.spaces[sp] = members
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if p.allowTTL == 0 {
		p.allowTTL = DefaultPolicyAllowTTL
	}
	if p.denyTTL == 0 {
		p.denyTTL = DefaultPolicyDenyTTL
	}
	return p, nil
}

// lineOf finds the line of the key at path in a YAML document (the line
// of the deepest key found, or 0).
func lineOf(root *yaml.Node, path ...string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Decide answers one authorization check. A nil policy denies everything.
func (p *Policy) Decide(req api.AuthorizeRequest) api.Decision {
	if p == nil {
		return api.Decision{Reason: "no policy"}
	}
	deny := func(format string, args ...any) api.Decision {
		return api.Decision{Reason: fmt.Sprintf(format, args...), TTLSeconds: int(p.denyTTL / time.Second)}
	}
	u := req.User.ID
	var space string
	switch req.Resource.Type {
	case "app":
		space = req.Resource.Space
		if space == "" {
			return deny("app %s has no space", req.Resource.ID)
		}
	case "space":
		space = req.Resource.ID
	default:
		return deny("unknown resource type %q", req.Resource.Type)
	}
	members, ok := p.spaces[space]
	if !ok {
		return deny("no space %s in the policy", space)
	}
	// The user's roles in the space, each with how they hold it.
	type grant struct{ role, via string }
	var grants []grant
	if role, ok := members["user:"+u]; ok {
		grants = append(grants, grant{role, ""})
	}
	groups := slices.Clone(req.User.Groups)
	for _, g := range sortedKeys(p.groups) {
		if slices.Contains(p.groups[g], u) {
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	for _, g := range slices.Compact(groups) {
		if role, ok := members["group:"+g]; ok {
			grants = append(grants, grant{role, g})
		}
	}
	if len(grants) == 0 {
		return deny("%s has no role in space %s", u, space)
	}
	for _, g := range grants {
		if grantsAction(p.roles[g.role], req.Action) {
			reason := fmt.Sprintf("%s has role %s in space %s", u, g.role, space)
			if g.via != "" {
				reason += " through group " + g.via
			}
			return api.Decision{Allow: true, Reason: reason, TTLSeconds: int(p.allowTTL / time.Second)}
		}
	}
	return deny("no role grants %s to %s in space %s", req.Action, u, space)
}

func grantsAction(actions []string, action string) bool {
	for _, a := range actions {
		if a == "*" || a == action || (strings.HasSuffix(a, ".*") && strings.HasPrefix(action, strings.TrimSuffix(a, "*"))) {
			return true
		}
	}
	return false
}
