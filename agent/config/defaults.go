package config

import (
	"path/filepath"
	"time"

	"github.com/edgefort/edgefort/clientapi"
	"github.com/edgefort/edgefort/clientapi/headerauth"
	"github.com/edgefort/edgefort/cloudclient"
	"github.com/edgefort/edgefort/iot"
)

// Defaults, named once. Components read the filled-in Config, never these.
const (
	DefaultStateDir           = "/var/lib/edgefort"
	DefaultLogLevel           = "info"
	DefaultLogFormat          = "text"
	DefaultMetricsListen      = "127.0.0.1:9273"
	DefaultShutdownTimeout    = 10 * time.Second
	DefaultRestartInitial     = time.Second
	DefaultRestartMax         = 2 * time.Minute
	DefaultRestartResetAfter  = time.Minute
	DefaultCloudTimeout       = 10 * time.Second
	DefaultAuthzCacheSize     = cloudclient.DefaultAuthzCacheSize
	DefaultAuthzMaxTTL        = cloudclient.DefaultAuthzMaxTTL
	DefaultAuthzMaxNegTTL     = cloudclient.DefaultAuthzMaxNegTTL
	DefaultAuthzMaxStaleness  = cloudclient.DefaultAuthzMaxStaleness
	DefaultIoTKeepAlive       = iot.DefaultKeepAlive // 5m: why, in iot
	DefaultIoTReconnectMax    = 2 * time.Minute
	DefaultIoTReconnectSpread = 40 * time.Second
	// Mender's production defaults (UpdatePollIntervalSeconds,
	// InventoryPollIntervalSeconds, RetryPollIntervalSeconds).
	DefaultUpdatePoll        = 30 * time.Minute
	DefaultInventoryInterval = 8 * time.Hour
	DefaultUpdateRetry       = 5 * time.Minute
	DefaultModulesDir        = "/usr/share/mender/modules/v3"
	DefaultScriptsDir        = "/etc/edgefort/scripts"
	DefaultModuleTimeout     = 4 * time.Hour
	DefaultHealthTimeout     = time.Minute
	DefaultGRUBEnvDir        = "/boot/efi/EFI/BOOT" // grub-mender-grubenv's ENV_DIR
	DefaultTLSMinVersion     = "1.2"
	adminSocketName          = "admin.sock"
)

// setDefaults fills every unset field. It is the only place defaults are
// applied; Validate then checks the result.
func (c *Config) setDefaults() {
	setString(&c.StateDir, DefaultStateDir)
	setString(&c.Log.Level, DefaultLogLevel)
	setString(&c.Log.Format, DefaultLogFormat)
	setString(&c.Admin.Socket, filepath.Join(c.StateDir, adminSocketName))
	setBool(&c.Metrics.Enabled, true)
	setString(&c.Metrics.Listen, DefaultMetricsListen)

	s := &c.Supervisor
	setDuration(&s.ShutdownTimeout, DefaultShutdownTimeout)
	setDuration(&s.RestartInitial, DefaultRestartInitial)
	setDuration(&s.RestartMax, DefaultRestartMax)
	setDuration(&s.RestartResetAfter, DefaultRestartResetAfter)

	setDuration(&c.Cloud.Timeout, DefaultCloudTimeout)
	a := &c.Cloud.Authorization
	setInt(&a.CacheSize, DefaultAuthzCacheSize)
	setDuration(&a.MaxTTL, DefaultAuthzMaxTTL)
	setDuration(&a.MaxNegativeTTL, DefaultAuthzMaxNegTTL)
	setString(&a.WhenUnreachable, FailClosed)
	setDuration(&a.MaxStaleness, DefaultAuthzMaxStaleness)
	setSSLDefaults(&c.Cloud.SSL, true)

	setString(&c.IoT.ThingName, c.Device.ID)
	if c.IoT.ThingName != "" {
		setString(&c.IoT.EventsTopic, "edgefort/"+c.IoT.ThingName+"/events")
	}
	setDuration(&c.IoT.KeepAlive, DefaultIoTKeepAlive)
	setDuration(&c.IoT.ReconnectMax, DefaultIoTReconnectMax)
	setDuration(&c.IoT.ReconnectSpread, min(DefaultIoTReconnectSpread, c.IoT.ReconnectMax))
	setString(&c.IoT.Credentials.Source, CredentialsCloud)
	setSSLDefaults(&c.IoT.SSL, true)

	u := &c.Updates
	setDuration(&u.PollInterval, DefaultUpdatePoll)
	setDuration(&u.InventoryInterval, DefaultInventoryInterval)
	setDuration(&u.RetryInterval, DefaultUpdateRetry)
	setString(&u.ModulesDir, DefaultModulesDir)
	setString(&u.ScriptsDir, DefaultScriptsDir)
	setDuration(&u.ModuleTimeout, DefaultModuleTimeout)
	setDuration(&u.HealthTimeout, DefaultHealthTimeout)
	setString(&u.GRUBEnvDir, DefaultGRUBEnvDir)
	setSSLDefaults(&u.SSL, true)

	for i := range c.Clients.VirtualHosts {
		setVirtualHostDefaults(&c.Clients.VirtualHosts[i], c.Supervisor.ShutdownTimeout)
	}
	c.Clients.AuthAPI.SetDefaults()
	setSSLDefaults(&c.Clients.AuthAPI.SSL, true)
	for i := range c.Clients.TargetEndpoints {
		t := &c.Clients.TargetEndpoints[i]
		setSSLDefaults(&t.SSL, hasScheme(t.URL, "https"))
	}
}

func setSSLDefaults(s *SSL, enabled bool) {
	setBool(&s.Enabled, enabled)
	setString(&s.MinVersion, DefaultTLSMinVersion)
}

func setString(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

func setDuration(p *time.Duration, def time.Duration) {
	if *p == 0 {
		*p = def
	}
}

func setInt(p *int, def int) {
	if *p == 0 {
		*p = def
	}
}

func setBool(p **bool, def bool) {
	if *p == nil {
		*p = &def
	}
}

// setVirtualHostDefaults fills a virtual host with clientapi's named
// defaults; the drain time stays within half the supervisor's shutdown
// timeout, which bounds the whole stop.
func setVirtualHostDefaults(vh *VirtualHost, shutdown time.Duration) {
	setSSLDefaults(&vh.SSL, false)
	setBool(&vh.HTTP2, true)
	t := &vh.Timeouts
	setDuration(&t.ReadHeader, clientapi.DefaultReadHeaderTimeout)
	setDuration(&t.Idle, clientapi.DefaultIdleTimeout)
	setDuration(&t.Drain, min(clientapi.DefaultDrainTimeout, shutdown/2))
	setInt(&vh.Limits.MaxHeaderBytes, clientapi.DefaultMaxHeaderBytes)
	if vh.Limits.MaxRequestBodyBytes == 0 {
		vh.Limits.MaxRequestBodyBytes = clientapi.DefaultMaxRequestBodyBytes
	}
	if vh.FailedAuthLimit.PerSecond == 0 {
		vh.FailedAuthLimit.PerSecond = clientapi.DefaultFailedAuthPerSecond
	}
	setInt(&vh.FailedAuthLimit.Burst, clientapi.DefaultFailedAuthBurst)
	for _, s := range vh.Authentication {
		if a := s.Anonymous; a != nil {
			setString(&a.Name, clientapi.DefaultAnonymousName)
			setString(&a.UserID, clientapi.DefaultAnonymousUserID)
			setString(&a.Directory, clientapi.DefaultAnonymousDirectory)
		}
		if h := s.Header; h != nil {
			setString(&h.Name, headerauth.DefaultName)
			setString(&h.Directory, h.Name)
		}
		if t := s.Ticket; t != nil {
			t.SetDefaults()
		}
		if m := s.SessionModule; m != nil {
			m.SetDefaults()
			setSSLDefaults(&m.ValidationSSL, hasScheme(m.ValidationURL, "https"))
		}
		if sa := s.SAML; sa != nil {
			sa.SetDefaults()
		}
		if o := s.OIDC; o != nil {
			o.SetDefaults()
			setSSLDefaults(&o.SSL, true)
		}
	}
	hs := &vh.Identity.Headers
	setString(&hs.UserID, clientapi.DefaultUserIDHeader)
	setString(&hs.Directory, clientapi.DefaultDirectoryHeader)
	setString(&hs.Groups, clientapi.DefaultGroupsHeader)
	setString(&hs.Anonymous, clientapi.DefaultAnonymousHeader)
	setString(&vh.Identity.JWT.Header, clientapi.DefaultIdentityJWTHeader)
	setDuration(&vh.Identity.JWT.TTL, clientapi.DefaultIdentityJWTTTL)
	for i := range vh.Routes {
		setDuration(&vh.Routes[i].Timeout, clientapi.DefaultRouteTimeout)
	}
}
