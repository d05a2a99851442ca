package layers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/edgefort/edgefort"

// Layers of the product, lowest first. A package imports only packages in a
// lower layer or in its own tree; links are one layer, but each link is its
// own tree and none imports another.
const (
	ground = iota
	keystoreLayer
	links
	agentLayer
	cmdLayer
	// dev packages (the dev binary, the fake cloud, scripts) may import
	// anything in the product; the product imports none of them.
	dev
	// testOnly packages are helpers for tests: only test files and dev
	// packages import them.
	testOnly
)

var layerNames = map[int]string{
	ground: "internal", keystoreLayer: "keystore", links: "link", agentLayer: "agent",
	cmdLayer: "cmd", dev: "dev-only", testOnly: "test-only",
}

// trees maps a directory of the module to its layer; the longest match wins.
// The tree of a package is the key it matched, so iot/jobs and iot are one
// link and may import each other.
var trees = map[string]int{
	"internal":                      ground,
	"internal/testkit":              testOnly,
	"internal/openapitest":          testOnly,
	"internal/peertest":             testOnly,
	"internal/prom/promtest":        testOnly,
	"updater/artifact/artifacttest": testOnly,
	"clientapi/jwtauth/jwttest":     testOnly,
	"keystore":                      keystoreLayer,
	"clientapi":                     links,
	"cloudclient":                   links,
	"iot":                           links,
	"updater":                       links,
	"agent":                         agentLayer,
	"cmd/edgefort":                  cmdLayer,
	"cmd/edgefort-dev":              dev,
	"devcloud":                      dev,
	"scripts":                       dev,
	"packaging":                     dev,
}

// classify returns the layer and tree of a module package; ok is false for
// a package outside every tree.
func classify(pkg string) (layer int, tree string, ok bool) {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	for dir, l := range trees {
		if (rel == dir || strings.HasPrefix(rel, dir+"/")) && len(dir) > len(tree) {
			layer, tree, ok = l, dir, true
		}
	}
	return layer, tree, ok
}

type goPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func listPackages(t *testing.T) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -json %s/...: %v\n%s", module, err, stderr.Bytes())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if !slices.ContainsFunc(pkgs, func(p goPackage) bool { return p.ImportPath == module+"/agent" }) {
		t.Fatalf("go list lists no agent package; the check would pass vacuously")
	}
	return pkgs
}

// checkImport returns why from (a package, or its tests when test is set)
// may not import to, or "" when it may.
func checkImport(from, to string, test bool) string {
	fl, ft, _ := classify(from)
	tl, tt, _ := classify(to)
	switch {
	case ft == tt || fl == dev || fl == testOnly:
		return ""
	case tl == dev || tl == testOnly:
		if test {
			return "" // tests may run the fake cloud and use test helpers
		}
		return fmt.Sprintf("the product imports a %s package", layerNames[tl])
	case tl > fl:
		return fmt.Sprintf("imports point down (cmd → agent → links → keystore → internal), this one points up from %s to %s", layerNames[fl], layerNames[tl])
	case tl == fl && fl == links && !test:
		return fmt.Sprintf("links do not import each other (%s → %s)", ft, tt)
	}
	return ""
}

// TestImportDirection fails when an import points up the layers, a link
// imports another link, or the product imports a dev-only or test-only
// package. Test files may also use other links (a real peer in an
// integration test), dev packages and test helpers, but never a higher layer.
func TestImportDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		if _, _, ok := classify(p.ImportPath); !ok {
			t.Errorf("%s: in no layer; add its directory to trees in scripts/layers/layers_test.go", p.ImportPath)
			continue
		}
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				if !strings.HasPrefix(imp, module+"/") {
					continue
				}
				if why := checkImport(p.ImportPath, imp, test); why != "" {
					kind := "imports"
					if test {
						kind = "test imports"
					}
					t.Errorf("%s %s %s: %s", strings.TrimPrefix(p.ImportPath, module+"/"), kind, strings.TrimPrefix(imp, module+"/"), why)
				}
			}
		}
		check(p.Imports, false)
		check(append(slices.Clone(p.TestImports), p.XTestImports...), true)
	}
}

// TestClassify pins the layer table on a few packages, so a wrong prefix
// match (iot vs iotx, updater vs updater/artifact/artifacttest) shows here.
func TestClassify(t *testing.T) {
	cases := []struct {
		pkg   string
		layer int
		tree  string
	}{
		{"internal/backoff", ground, "internal"},
		{"internal/testkit", testOnly, "internal/testkit"},
		{"keystore", keystoreLayer, "keystore"},
		{"iot/jobs", links, "iot"},
		{"updater/artifact", links, "updater"},
		{"updater/artifact/artifacttest", testOnly, "updater/artifact/artifacttest"},
		{"agent/adminapi", agentLayer, "agent"},
		{"cmd/edgefort", cmdLayer, "cmd/edgefort"},
		{"cmd/edgefort-dev", dev, "cmd/edgefort-dev"},
		{"devcloud/devstack", dev, "devcloud"},
	}
	for _, c := range cases {
		layer, tree, ok := classify(module + "/" + c.pkg)
		if !ok || layer != c.layer || tree != c.tree {
			t.Errorf("classify(%s) = %s %q %v, want %s %q", c.pkg, layerNames[layer], tree, ok, layerNames[c.layer], c.tree)
		}
	}
	if _, _, ok := classify(module + "/iotx"); ok {
		t.Errorf("classify(iotx) found a layer; a prefix must match a whole directory")
	}
	for _, c := range []struct {
		from, to string
		test     bool
		allowed  bool
	}{
		{"iot", "internal/backoff", false, true},
		{"iot", "cloudclient/outbox", false, false},
		{"iot", "cloudclient/outbox", true, true},
		{"keystore", "agent/config", false, false},
		{"keystore", "agent/config", true, false},
		{"agent", "devcloud", false, false},
		{"agent", "internal/testkit", true, true},
		{"cmd/edgefort-dev", "agent", false, true},
	} {
		why := checkImport(module+"/"+c.from, module+"/"+c.to, c.test)
		if (why == "") != c.allowed {
			t.Errorf("checkImport(%s → %s, test=%v) = %q, want allowed=%v", c.from, c.to, c.test, why, c.allowed)
		}
	}
}
