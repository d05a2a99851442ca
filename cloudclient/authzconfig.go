package cloudclient

import "time"

// Authorization policies for when-unreachable.
const (
	FailClosed = "fail_closed"
	ServeStale = "serve_stale"
)

// Authorization configures the decision cache: the configuration's
// cloud.authorization section (agent/config composes it).
type Authorization struct {
	// CacheSize bounds the number of cached decisions. Default 10000.
	CacheSize int `yaml:"cache_size"`
	// MaxTTL caps how long an allow is cached. Default 5m.
	MaxTTL time.Duration `yaml:"max_ttl"`
	// MaxNegativeTTL caps how long a deny is cached. Default 1m.
	MaxNegativeTTL time.Duration `yaml:"max_negative_ttl"`
	// WhenUnreachable is fail_closed (deny) or serve_stale (use an expired
	// decision up to MaxStaleness). Default fail_closed.
	WhenUnreachable string `yaml:"when_unreachable"`
	// MaxStaleness bounds serve_stale. Default 15m.
	MaxStaleness time.Duration `yaml:"max_staleness"`
}

// Authorization defaults, applied to zero fields.
const (
	DefaultAuthzCacheSize    = 10000
	DefaultAuthzMaxTTL       = 5 * time.Minute
	DefaultAuthzMaxNegTTL    = time.Minute
	DefaultAuthzMaxStaleness = 15 * time.Minute
)
