package devstack

import (
	_ "embed"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/edgefort/edgefort/agent"
	"github.com/edgefort/edgefort/agent/adminapi"
	"github.com/edgefort/edgefort/agent/config"
	"github.com/edgefort/edgefort/devcloud"
)

//go:embed banner.txt
var bannerText string

var bannerTmpl = template.Must(template.New("banner").Parse(bannerText))

// bannerData fill banner.txt.
type bannerData struct {
	S                                  adminapi.Status
	Cfg                                *config.Config
	Info                               Info
	ConfigPath, InfoFile, PolicyFile   string
	Hub, HubAddr, HubStore             string
	Proxied, ProxyAddr                 string
	Module, ModuleCert, ModuleKey      string
	PortalCookie                       string
	CAFile, CAKey, EngineLog           string
	DeployedDir, Components, Self, Dev string
	IdPs                               IdPsInfo
	NoIdPs                             bool
	Alice, Bob                         string // their dev passwords
	DeviceDir, Booted, PanicMarker     string // the simulated A/B device
}

// PrintBanner prints what runs and what to try. The commands it suggests
// are `go run` ones when this process was started by `go run`.
func (s *Stack) PrintBanner(w io.Writer, a *agent.Agent) error {
	st := a.Status()
	var names []string
	for _, c := range st.Components {
		names = append(names, c.Name)
	}
	self, dev := "edgefort", "edgefort-dev"
	if exe, err := os.Executable(); err == nil && strings.Contains(exe, "go-build") {
		self, dev = "go run ./cmd/edgefort", "go run ./cmd/edgefort-dev"
	}
	dir := s.Config.StateDir
	hub := st.VirtualHosts["hub"]
	module := ""
	if st.AuthAPI != "" {
		module = s.Info.AuthModule.URL
	}
	return bannerTmpl.Execute(w, bannerData{
		S: st, Cfg: s.Config, Info: s.Info,
		ConfigPath: s.ConfigPath, InfoFile: filepath.Join(dir, InfoFile), PolicyFile: filepath.Join(dir, PolicyFile),
		Hub: hub, HubAddr: strings.TrimPrefix(hub, "https://"), HubStore: HubStore,
		Proxied: st.VirtualHosts["proxied"], ProxyAddr: devProxyAddr,
		ModuleCert: s.Info.AuthModule.Cert, ModuleKey: s.Info.AuthModule.Key, PortalCookie: PortalCookie,
		CAFile: filepath.Join(dir, CADir, devcloud.CACertFile), CAKey: filepath.Join(dir, CADir, devcloud.CAKeyFile),
		EngineLog: filepath.Join(dir, EngineDir, EngineLog), DeployedDir: filepath.Join(dir, DeployedDir),
		Components: strings.Join(names, ", "), Self: self, Dev: dev, Module: module,
		IdPs: s.Info.IdPs, NoIdPs: s.idps == nil, Alice: DevUsers[devUser].Password, Bob: DevUsers[viewerUser].Password,
		DeviceDir: filepath.Join(dir, DeviceDir), Booted: filepath.Base(s.Booted()), PanicMarker: PanicMarker,
	})
}
