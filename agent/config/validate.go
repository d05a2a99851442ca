package config

import (
	"net"
	"net/netip"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgefort/edgefort/updater/deploy"
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path
// holds 108 bytes including the terminating NUL).
const maxSocketPath = 107

// The patterns compile on first use, not at every start: bounded
// repetitions such as {0,63} expand into large programs, and compiled at
// init they cost the agent's heap about half a MiB whether it validates a
// name or not (cmd/edgefort's TestInitAllocations).
var (
	namePattern      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`) })
	regionPattern    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`) })
	thingNamePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9:_-]{1,128}$`) })
	// storeVariables are the per-request variables a target endpoint may use
	// instead of a store name.
	storeVariables = map[string]string{
		"keystore":   "{ssl.keystore}",
		"truststore": "{ssl.truststore}",
		"key_alias":  "{ssl.key_alias}",
	}
)

// validate checks a defaulted Config. It changes nothing and reports every
// problem with the path of the field it concerns.
func (c *Config) validate(p *problems) {
	switch {
	case c.Version == 0:
		p.add(0, "version", "required; this build reads version %d", CurrentVersion)
	case c.Version != CurrentVersion:
		p.add(0, "version", "unsupported version %d; this build reads version %d", c.Version, CurrentVersion)
	}
	for i, h := range c.Device.Hostnames {
		if !validHostname(h) {
			p.add(0, index("device.hostnames", i), "%q is not a valid host name", h)
		}
	}
	checkAbsPath(p, "state_dir", c.StateDir)
	checkOneOf(p, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	checkOneOf(p, "log.format", c.Log.Format, "text", "json")
	c.Admin.validate(p, c.StateDir)
	if checkAddress(p, "metrics.listen", c.Metrics.Listen, true) && !c.Metrics.AllowNonLoopback && !isLoopback(c.Metrics.Listen) {
		p.add(0, "metrics.listen", "%q is not a loopback address; metrics stay on the node unless allow_non_loopback is true", c.Metrics.Listen)
	}
	c.Supervisor.validate(p)
	validateCloud(c.Cloud, p)
	validateIoT(c.IoT, p, c.Clients.TargetEndpoints)
	validateUpdates(c.Updates, p, c.Device)
	validateClients(c.Clients, p, c.Cloud.Enabled, c.Supervisor.ShutdownTimeout)
	validateKeystores(c.Keystores, p)
}

// maxSocketDir bounds the directory of the admin socket: the agent binds
// the socket as DIR/.aNNNNNNNNNN/s (a private directory, see
// agent.listenAdmin) before moving it into place, and that name must fit
// in a unix socket address too.
const maxSocketDir = maxSocketPath - len("/.a1234567890/s")

// maxID is the largest uid or gid: (uid_t)-1 means "no id" to the kernel.
const maxID = 1<<32 - 2

func (a Admin) validate(p *problems, stateDir string) {
	if checkAbsPath(p, "admin.socket", a.Socket) {
		dir := filepath.Dir(a.Socket)
		switch {
		case len(a.Socket) > maxSocketPath:
			p.add(0, "admin.socket", "path is %d bytes, longer than the %d a unix socket allows", len(a.Socket), maxSocketPath)
		case len(dir) > maxSocketDir:
			p.add(0, "admin.socket", "directory is %d bytes, longer than %d (the socket is bound under a private name in it first)", len(dir), maxSocketDir)
		}
		if a.AllowsOthers() && within(a.Socket, stateDir) {
			p.add(0, "admin.socket", "%q is inside state_dir, which only the agent's user can enter, so allow_uids and allow_gids could not reach it; put the socket elsewhere, e.g. /run/edgefort/admin.sock", a.Socket)
		}
	}
	for field, ids := range map[string][]int{"admin.allow_uids": a.AllowUIDs, "admin.allow_gids": a.AllowGIDs} {
		for i, id := range ids {
			if id < 0 || int64(id) > maxID {
				p.add(0, index(field, i), "%d is not a valid id (0 to %d)", id, maxID)
			}
		}
	}
}

// within reports whether path lies in dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func (s Supervisor) validate(p *problems) {
	checkRange(p, "supervisor.shutdown_timeout", s.ShutdownTimeout, time.Second, 10*time.Minute)
	checkRange(p, "supervisor.restart_initial", s.RestartInitial, time.Millisecond, time.Hour)
	checkRange(p, "supervisor.restart_max", s.RestartMax, time.Millisecond, 24*time.Hour)
	checkRange(p, "supervisor.restart_reset_after", s.RestartResetAfter, time.Second, 24*time.Hour)
	if s.RestartMax < s.RestartInitial {
		p.add(0, "supervisor.restart_max", "%s is less than restart_initial (%s)", s.RestartMax, s.RestartInitial)
	}
}

func validateCloud(c Cloud, p *problems) {
	// Empty: the URL the enrollment gave.
	checkRequiredURL(p, "cloud.url", c.URL, false, "https")
	checkRange(p, "cloud.timeout", c.Timeout, 100*time.Millisecond, 5*time.Minute)
	a := c.Authorization
	if a.CacheSize < 1 || a.CacheSize > 10_000_000 {
		p.add(0, "cloud.authorization.cache_size", "%d is out of range (1 to 10000000)", a.CacheSize)
	}
	checkRange(p, "cloud.authorization.max_ttl", a.MaxTTL, time.Second, 24*time.Hour)
	checkRange(p, "cloud.authorization.max_negative_ttl", a.MaxNegativeTTL, time.Second, 24*time.Hour)
	checkRange(p, "cloud.authorization.max_staleness", a.MaxStaleness, time.Second, 7*24*time.Hour)
	checkOneOf(p, "cloud.authorization.when_unreachable", a.WhenUnreachable, FailClosed, ServeStale)
	validateSSL(c.SSL, p, "cloud.ssl", outbound)
}

func validateIoT(c IoT, p *problems, targets []TargetEndpoint) {
	if c.Enabled && c.Endpoint == "" {
		p.add(0, "iot.endpoint", "required when iot is enabled (the account's ATS endpoint, e.g. abc123-ats.iot.eu-west-1.amazonaws.com)")
	}
	if c.Endpoint != "" {
		host := c.Endpoint
		if strings.Contains(host, ":") {
			if checkAddress(p, "iot.endpoint", c.Endpoint, false) {
				host, _, _ = net.SplitHostPort(c.Endpoint)
			}
		}
		if strings.Contains(c.Endpoint, "/") || !validHostname(host) {
			p.add(0, "iot.endpoint", "%q is not host[:port]", c.Endpoint)
		}
	}
	if c.Enabled && c.Region == "" {
		p.add(0, "iot.region", "required when iot is enabled")
	}
	if c.Region != "" && !regionPattern().MatchString(c.Region) {
		p.add(0, "iot.region", "%q is not an AWS region name such as eu-west-1", c.Region)
	}
	if c.Enabled && c.ThingName == "" {
		p.add(0, "iot.thing_name", "required when iot is enabled and device.id is empty")
	}
	if c.ThingName != "" && !thingNamePattern().MatchString(c.ThingName) {
		p.add(0, "iot.thing_name", "%q is not a valid AWS IoT thing name (letters, digits, ':', '_', '-'; at most 128)", c.ThingName)
	}
	if strings.ContainsAny(c.EventsTopic, "#+") {
		p.add(0, "iot.events_topic", "%q must be a topic name, not a filter with wildcards", c.EventsTopic)
	}
	checkRange(p, "iot.keep_alive", c.KeepAlive, 30*time.Second, 1200*time.Second)
	checkRange(p, "iot.reconnect_max", c.ReconnectMax, time.Second, time.Hour)
	checkRange(p, "iot.reconnect_spread", c.ReconnectSpread, time.Second, c.ReconnectMax)
	if c.WebhookTarget != "" && !slices.ContainsFunc(targets, func(t TargetEndpoint) bool { return t.Name == c.WebhookTarget }) {
		p.add(0, "iot.webhook_target", "no target endpoint named %q in clients.target_endpoints", c.WebhookTarget)
	}
	cr := c.Credentials
	if checkOneOf(p, "iot.credentials.source", cr.Source, CredentialsCloud, CredentialsAWS, CredentialsStatic) {
		static := cr.Source == CredentialsStatic
		for field, value := range map[string]string{"access_key_id": cr.AccessKeyID, "secret_access_key": cr.SecretAccessKey} {
			if static && value == "" {
				p.add(0, "iot.credentials."+field, "required when source is static")
			}
		}
		if !static && (cr.AccessKeyID != "" || cr.SecretAccessKey != "" || cr.SessionToken != "") {
			p.add(0, "iot.credentials.source", "keys are set but source is %q; they are used only with source static", cr.Source)
		}
	}
	validateSSL(c.SSL, p, "iot.ssl", outbound)
}

func validateUpdates(u Updates, p *problems, dev Device) {
	checkRequiredURL(p, "updates.server_url", u.ServerURL, u.Enabled, "https")
	if u.Enabled && dev.DeviceType == "" {
		p.add(0, "device.device_type", "required when updates are enabled (artifacts name the device types they install on)")
	}
	checkRange(p, "updates.poll_interval", u.PollInterval, 5*time.Second, 7*24*time.Hour)
	checkRange(p, "updates.inventory_interval", u.InventoryInterval, 5*time.Second, 7*24*time.Hour)
	checkRange(p, "updates.retry_interval", u.RetryInterval, time.Second, 24*time.Hour)
	for i, k := range u.VerifyKeys {
		checkAbsPath(p, index("updates.verify_keys", i), k)
	}
	checkAbsPath(p, "updates.modules_dir", u.ModulesDir)
	checkAbsPath(p, "updates.scripts_dir", u.ScriptsDir)
	checkRange(p, "updates.module_timeout", u.ModuleTimeout, time.Second, 7*24*time.Hour)
	checkRange(p, "updates.health_timeout", u.HealthTimeout, time.Second, time.Hour)
	if len(u.RebootCommand) > 0 && !filepath.IsAbs(u.RebootCommand[0]) {
		if _, err := exec.LookPath(u.RebootCommand[0]); err != nil && u.Enabled {
			p.add(0, "updates.reboot_command", "%q is not an absolute path and is not found in PATH", u.RebootCommand[0])
		}
	}
	if u.DownloadRateLimit < 0 {
		p.add(0, "updates.download_rate_limit", "%d is negative; use 0 for no limit", u.DownloadRateLimit)
	}
	validateRootfs(u, p)
	validateSSL(u.SSL, p, "updates.ssl", outbound)
}

// validateRootfs checks the A/B pair of rootfs-image updates and its boot
// loader.
func validateRootfs(u Updates, p *problems) {
	if u.RootfsPartA == "" && u.RootfsPartB == "" {
		if u.BootEnv != "" {
			p.add(0, "updates.boot_env", "%q is set but rootfs_part_a and rootfs_part_b are not; set both for rootfs-image updates", u.BootEnv)
		}
		return
	}
	parts := map[string]string{"updates.rootfs_part_a": u.RootfsPartA, "updates.rootfs_part_b": u.RootfsPartB}
	for _, field := range []string{"updates.rootfs_part_a", "updates.rootfs_part_b"} {
		v := parts[field]
		switch {
		case v == "":
			p.add(0, field, "required when the other partition of the A/B pair is set")
		case !checkAbsPath(p, field, v):
		case !endsInDigit(v) && !strings.HasPrefix(v, "/dev/disk/"):
			p.add(0, field, "%q does not end in a partition number (the boot loader selects the partition by it, e.g. /dev/mmcblk0p2)", v)
		}
	}
	if u.RootfsPartA != "" && u.RootfsPartA == u.RootfsPartB {
		p.add(0, "updates.rootfs_part_b", "%q is rootfs_part_a as well; the A/B pair needs two partitions", u.RootfsPartB)
	}
	checkOneOf(p, "updates.boot_env", u.BootEnv, deploy.BootEnvUBoot, deploy.BootEnvGRUB)
	if u.FWEnvConfig != "" {
		checkAbsPath(p, "updates.fw_env_config", u.FWEnvConfig)
	}
	checkAbsPath(p, "updates.grubenv_dir", u.GRUBEnvDir)
	if len(u.RebootCommand) == 0 {
		p.add(0, "updates.reboot_command", "required with rootfs_part_a and rootfs_part_b: a root filesystem update boots the new partition")
	}
}

func endsInDigit(s string) bool { return s != "" && s[len(s)-1] >= '0' && s[len(s)-1] <= '9' }

func validateKeystores(k Keystores, p *problems) {
	for name, target := range k.References {
		path := "keystores.references." + name
		if !namePattern().MatchString(name) {
			p.add(0, path, "%q is not a valid reference name (letters, digits, '.', '_', '-')", name)
		}
		if strings.HasPrefix(target, refScheme) {
			p.add(0, path, "%q: a reference points at a keystore or truststore, not at another reference", target)
		} else if !namePattern().MatchString(target) {
			p.add(0, path, "%q is not a valid store name", target)
		}
	}
}

// direction says where an SSL block is used; some settings make sense only
// one way.
type direction int

const (
	inbound        direction = iota // a virtual host
	outbound                        // a cloud link
	outboundTarget                  // a target endpoint, which may use variables
)

const refScheme = "ref://"

func validateSSL(s SSL, p *problems, path string, dir direction) {
	checkStore(p, path+".keystore", s.Keystore, "keystore", dir)
	checkStore(p, path+".truststore", s.Truststore, "truststore", dir)
	if s.KeyAlias != "" {
		if dir == outboundTarget && s.KeyAlias == storeVariables["key_alias"] {
			// resolved per request
		} else if strings.Contains(s.KeyAlias, "{") {
			p.add(0, path+".key_alias", "%q: variables are allowed only on target endpoints, and only %s", s.KeyAlias, storeVariables["key_alias"])
		} else if !namePattern().MatchString(s.KeyAlias) {
			p.add(0, path+".key_alias", "%q is not a valid alias", s.KeyAlias)
		}
		if s.Keystore == "" {
			p.add(0, path+".key_alias", "set, but no keystore is named")
		}
	}
	checkOneOf(p, path+".min_version", s.MinVersion, "1.2", "1.3")
	if dir == inbound {
		if s.CommonName != "" || s.WildcardMatch {
			p.add(0, path+".common_name", "only target endpoints check a peer's common name; remove it from the virtual host")
		}
		if s.IgnoreValidationErrors {
			p.add(0, path+".ignore_validation_errors", "applies only to outbound connections")
		}
		if s.ClientAuthEnabled && s.Truststore == "" {
			p.add(0, path+".truststore", "required when client_auth_enabled is true (client certificates are verified against it)")
		}
		return
	}
	if s.WildcardMatch && s.CommonName == "" {
		p.add(0, path+".wildcard_match", "set, but common_name is empty")
	}
	if s.CommonName != "" && !validHostname(strings.TrimPrefix(s.CommonName, "*.")) {
		p.add(0, path+".common_name", "%q is not a host name", s.CommonName)
	}
	if s.ClientAuthEnabled && s.Keystore == "" {
		p.add(0, path+".keystore", "required when client_auth_enabled is true (the client certificate comes from it)")
	}
}

func checkStore(p *problems, path, value, kind string, dir direction) {
	switch {
	case value == "":
	case strings.Contains(value, "{"):
		if dir != outboundTarget || value != storeVariables[kind] {
			p.add(0, path, "%q: variables are allowed only on target endpoints, and only %s", value, storeVariables[kind])
		}
	case strings.HasPrefix(value, refScheme):
		if !namePattern().MatchString(strings.TrimPrefix(value, refScheme)) {
			p.add(0, path, "%q is not a valid reference (ref://NAME)", value)
		}
	case !namePattern().MatchString(value):
		p.add(0, path, "%q is not a valid %s name or ref://reference", value, kind)
	}
}

func checkName(p *problems, path, name string, seen map[string]bool) {
	switch {
	case name == "":
		p.add(0, path, "required")
	case !namePattern().MatchString(name):
		p.add(0, path, "%q is not a valid name (letters, digits, '.', '_', '-')", name)
	case seen[name]:
		p.add(0, path, "%q is used twice", name)
	}
	seen[name] = true
}

func checkOneOf(p *problems, path, value string, allowed ...string) bool {
	for _, a := range allowed {
		if value == a {
			return true
		}
	}
	p.add(0, path, "%q is not one of %s", value, strings.Join(allowed, ", "))
	return false
}

func checkRange(p *problems, path string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		p.add(0, path, "%s is out of range (%s to %s)", d, lo, hi)
	}
}

func checkAbsPath(p *problems, path, value string) bool {
	if !filepath.IsAbs(value) {
		p.add(0, path, "%q must be an absolute path", value)
		return false
	}
	return true
}

// checkAddress checks host:port. allowZero permits port 0 (any free port).
func checkAddress(p *problems, path, addr string, allowZero bool) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add(0, path, "%q is not host:port (%s)", addr, strings.TrimPrefix(err.Error(), "address "+addr+": "))
		return false
	}
	n, err := strconv.Atoi(port)
	lo := 1
	if allowZero {
		lo = 0
	}
	if err != nil || n < lo || n > 65535 {
		p.add(0, path, "port %q is out of range (%d to 65535)", port, lo)
		return false
	}
	if host != "" && !validHostname(host) {
		if _, err := netip.ParseAddr(host); err != nil {
			p.add(0, path, "%q is not an IP address or host name", host)
			return false
		}
	}
	return true
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func checkRequiredURL(p *problems, path, value string, required bool, schemes ...string) bool {
	if value == "" {
		if required {
			p.add(0, path, "required")
		}
		return false
	}
	u, err := url.Parse(value)
	if err != nil {
		p.add(0, path, "%q is not a URL", value)
		return false
	}
	for _, s := range schemes {
		if u.Scheme == s && u.Host != "" {
			return true
		}
	}
	p.add(0, path, "%q must be an %s URL with a host", value, strings.Join(schemes, " or "))
	return false
}

func hasScheme(raw, scheme string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == scheme
}

var hostnamePattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$`)
})

func validHostname(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return len(h) <= 253 && hostnamePattern().MatchString(h)
}
