package main

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// deniedDeps are packages the product binary must not link, each with the
// reason. A later dependency that truly needs one moves it to allowedDeps
// with its reason, so the cost is a decision, not an accident.
var deniedDeps = map[string]string{
	"github.com/edgefort/edgefort/devcloud":                      "the fake cloud is for the dev environment (cmd/edgefort-dev) and tests; fakes never ship",
	"github.com/mochi-mqtt/server/v2":                            "an MQTT broker: devcloud's, never the node's",
	"text/template":                                              "its reflect MethodByName use keeps the linker from dropping unused methods (several MB); only dev.yaml used it",
	"html/template":                                              "as text/template, and nothing on the node renders HTML",
	"github.com/edgefort/edgefort/internal/testkit":              "test helpers (it opens stores and builds Artifacts for tests); never in the product",
	"github.com/edgefort/edgefort/updater/artifact/artifacttest": "builds hostile Artifacts for tests",
	"github.com/edgefort/edgefort/clientapi/jwtauth/jwttest":     "builds hostile JWTs for tests",
	"testing": "a test-only package reaching the product pulls the testing framework in with it",
	// Metrics (#13): internal/prom writes the text format the agent
	// serves; client_golang's protobuf data model, expfmt and procfs cost
	// 2.1 MiB of the stripped binary. They stay for tests only (an
	// independent parser of our output, the benchmarks beside ours).
	"github.com/prometheus/client_golang":                 "internal/prom is the node's metrics; client_golang is for tests and benchmarks only (2.1 MiB with what it drags in)",
	"github.com/prometheus/client_model":                  "client_golang's protobuf data model; internal/prom has its own",
	"github.com/prometheus/common":                        "expfmt parses our exposition in tests; the node only writes it",
	"github.com/prometheus/procfs":                        "internal/prom reads the few /proc files it needs",
	"google.golang.org/protobuf":                          "nothing on the node speaks protobuf; it came with client_model",
	"github.com/edgefort/edgefort/internal/prom/promtest": "reads metric values in tests",
}

// allowedDeps names denied packages a later change truly needs, with why.
var allowedDeps = map[string]string{
	// SAML (issue #16): github.com/crewjam/saml's root package, the SP
	// clientapi/samlauth uses, imports html/template for its own IdP and
	// POST-binding pages, which the node never renders. Their parse runs
	// at init, but no Execute is reachable, so reflect's method lookup is
	// not linked (TestNoReflectMethodLookup). Measured (issue #13): the
	// SAML solution adds 1.1 MiB to the stripped binary (13.5 -> 14.6 MB).
	"text/template": "github.com/crewjam/saml imports html/template (SAML, #16); linked for its init, never executed (TestNoReflectMethodLookup)",
	"html/template": "github.com/crewjam/saml imports it for pages the node never serves (SAML, #16)",
}

// TestDependencyDenyList fails when the product binary links a package on
// deniedDeps (or one below it, such as devcloud/devstack).
func TestDependencyDenyList(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/edgefort/edgefort/agent") {
		t.Fatalf("go list -deps lists no agent package; the check would pass vacuously:\n%s", out)
	}
	for _, dep := range deps {
		for denied, why := range deniedDeps {
			if dep != denied && !strings.HasPrefix(dep, denied+"/") {
				continue
			}
			if _, ok := allowedDeps[denied]; ok {
				continue
			}
			t.Errorf("cmd/edgefort links %s (denied: %s); see 'go list -deps ./cmd/edgefort' and 'go mod why -m' for the path", dep, why)
		}
	}
}

// TestNoReflectMethodLookup fails when the product binary can reach
// reflect's Method or MethodByName (text/template's Execute does): the
// linker then keeps every exported method of every reachable type. The
// login chooser's html/template page alone cost 1.9 MiB of the stripped
// binary (16.6 -> 14.6 MB, issue #13); crewjam/saml's templates are
// linked but never executed.
func TestNoReflectMethodLookup(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "edgefort")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	syms := string(out)
	if !strings.Contains(syms, " T main.main\n") {
		t.Fatalf("go tool nm lists no main.main; the check would pass vacuously")
	}
	for _, sym := range []string{"reflect.Value.MethodByName", "reflect.Value.Method", "reflect.(*rtype).MethodByName"} {
		if strings.Contains(syms, " T "+sym+"\n") {
			t.Errorf("cmd/edgefort can reach %s, so the linker keeps every exported method (about 1.9 MiB); a template Execute (text/template, html/template) is the usual cause", sym)
		}
	}
}
