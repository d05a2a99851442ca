package devstack

import (
	_ "embed"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/updater/rootfs/rootfstest"
)

//go:embed dev.yaml
var configTemplate string

// configTmpl is parsed once; text/template is why this package, and not
// the product binary, renders the configuration (see cmd/edgefort's
// dependency deny-list).
var configTmpl = template.Must(template.New("dev").Parse(configTemplate))

// ConfigParams fill the dev configuration template.
type ConfigParams struct {
	StateDir, LogLevel, ServerURL, ModulesDir string
	// The event link, once the enrollment named the thing.
	ThingName, BrokerHost, BrokerRegion, EngineURL string
	// ControlURL is the control plane's URL, the issuer of user tokens;
	// with it the hub gets its authentication chain, identity and routes.
	ControlURL string
	// ModuleURL is the dev authentication module's base URL; with it the
	// node runs clients.auth_api and the hub takes tickets and portal
	// sessions.
	ModuleURL string
	// SSOBase is the virtual host sso as browsers reach it; with it the
	// node gets that host, signing in through the dev IdPs: samlify's
	// metadata at SAMLMetadataURL, oidc-provider at OIDCIssuer (the
	// node's client secret OIDCClientSecret).
	SSOBase, SAMLMetadataURL, OIDCIssuer, OIDCClientSecret string
}

func quoteIf(s string) string {
	if s == "" {
		return ""
	}
	return strconv.Quote(s)
}

func jwksURL(controlURL string) string {
	if controlURL == "" {
		return ""
	}
	return controlURL + api.PathJWKS
}

func loginURL(moduleURL string) string {
	if moduleURL == "" {
		return ""
	}
	return moduleURL + "/login"
}

// quoteList renders a YAML flow sequence of quoted strings.
func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Config renders the configuration the dev stack runs.
func Config(p ConfigParams) ([]byte, error) {
	var b strings.Builder
	dev := rootfstest.Open(filepath.Join(p.StateDir, DeviceDir))
	err := configTmpl.Execute(&b, map[string]string{
		"RootfsPartA":   strconv.Quote(dev.PartA),
		"RootfsPartB":   strconv.Quote(dev.PartB),
		"GRUBEnvDir":    strconv.Quote(dev.GRUBDir),
		"RebootCommand": quoteList(rebootCommand(dev.Dir)),
		"StateDir":      strconv.Quote(p.StateDir),
		"LogLevel":      strconv.Quote(p.LogLevel),
		"ServerURL":     strconv.Quote(p.ServerURL),
		"ModulesDir":    strconv.Quote(p.ModulesDir),
		"ScriptsDir":    strconv.Quote(filepath.Join(p.StateDir, scriptsDir)),
		// Empty until the enrollment: the template leaves the event link
		// out while they are.
		"ThingName":        quoteIf(p.ThingName),
		"BrokerHost":       quoteIf(p.BrokerHost),
		"BrokerRegion":     quoteIf(p.BrokerRegion),
		"EngineURL":        p.EngineURL,
		"ControlURL":       quoteIf(p.ControlURL),
		"ControlJWKS":      quoteIf(jwksURL(p.ControlURL)),
		"ModuleURL":        p.ModuleURL,
		"ModuleLogin":      quoteIf(loginURL(p.ModuleURL)),
		"ModuleCN":         authModuleCN,
		"PortalCookie":     PortalCookie,
		"SSOBase":          quoteIf(p.SSOBase),
		"SAMLMetadataURL":  quoteIf(p.SAMLMetadataURL),
		"OIDCIssuer":       quoteIf(p.OIDCIssuer),
		"OIDCClientID":     oidcClientID,
		"OIDCClientSecret": quoteIf(p.OIDCClientSecret),
	})
	return []byte(b.String()), err
}
