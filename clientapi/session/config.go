package session

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
)

// Defaults, named once.
const (
	DefaultName            = "session"
	DefaultCookiePrefix    = "edgefort-session-"
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultAbsoluteTimeout = 8 * time.Hour
	DefaultMaxPerUser      = 10
	DefaultMaxTotal        = 100000
	DefaultTouchInterval   = time.Minute
	SameSiteLax            = "lax"
	SameSiteStrict         = "strict"
	maxCookieName          = 128
)

// Config is one virtual host's session solution: the configuration's
// clients.virtual_hosts[].authentication[].session entry. The zero value
// is valid: every field has a default.
type Config struct {
	// Name identifies the solution in logs and metrics. Default "session".
	Name string `yaml:"name"`
	// Cookie is the session cookie's name. Default
	// "edgefort-session-<virtual host name>", so that virtual hosts on one
	// domain do not overwrite each other's cookies (a cookie from another
	// virtual host never authenticates here either way: the session
	// records its virtual host).
	Cookie string `yaml:"cookie"`
	// SameSite is the cookie's SameSite attribute: "lax" (default) or
	// "strict". "none" is refused: it would send the cookie on
	// cross-site requests.
	SameSite string `yaml:"same_site"`
	// The timeouts and max_per_user apply to sessions opened after a
	// (re)load; an open session keeps the timeouts it was opened with.
	//
	// IdleTimeout ends a session unused this long. Default 30m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// AbsoluteTimeout ends a session this long after its login, used or
	// not. Default 8h.
	AbsoluteTimeout time.Duration `yaml:"absolute_timeout"`
	// MaxPerUser bounds one user's sessions on this virtual host: a new
	// login beyond it ends the user's own oldest session. Default 10.
	MaxPerUser int `yaml:"max_per_user"`
}

// WithDefaults fills zero fields; vhost names the virtual host.
func (c Config) WithDefaults(vhost string) Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Cookie == "" {
		c.Cookie = DefaultCookiePrefix + vhost
	}
	if c.SameSite == "" {
		c.SameSite = SameSiteLax
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.AbsoluteTimeout == 0 {
		c.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
	if c.MaxPerUser == 0 {
		c.MaxPerUser = DefaultMaxPerUser
	}
	return c
}

// Validate checks a configuration with its defaults filled in; it changes
// nothing and names the field (relative to the session entry).
func (c Config) Validate() error {
	var errs []error
	if len(c.Cookie) > maxCookieName || !validCookieName(c.Cookie) {
		errs = append(errs, &auth.FieldError{Field: "cookie", Err: fmt.Errorf("%q is not a cookie name (letters, digits and -._ only, at most %d)", c.Cookie, maxCookieName)})
	}
	if c.SameSite != SameSiteLax && c.SameSite != SameSiteStrict {
		errs = append(errs, &auth.FieldError{Field: "same_site", Err: fmt.Errorf("%q is not lax or strict", c.SameSite)})
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, &auth.FieldError{Field: "idle_timeout", Err: fmt.Errorf("%s is negative", c.IdleTimeout)})
	}
	if c.AbsoluteTimeout < 0 {
		errs = append(errs, &auth.FieldError{Field: "absolute_timeout", Err: fmt.Errorf("%s is negative", c.AbsoluteTimeout)})
	}
	if c.IdleTimeout > 0 && c.AbsoluteTimeout > 0 && c.IdleTimeout > c.AbsoluteTimeout {
		errs = append(errs, &auth.FieldError{Field: "idle_timeout", Err: fmt.Errorf("%s is longer than absolute_timeout %s", c.IdleTimeout, c.AbsoluteTimeout)})
	}
	if c.MaxPerUser < 0 {
		errs = append(errs, &auth.FieldError{Field: "max_per_user", Err: fmt.Errorf("%d is negative", c.MaxPerUser)})
	}
	return errors.Join(errs...)
}

func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._", r)) {
			return false
		}
	}
	return true
}

func (c Config) sameSite() http.SameSite {
	if c.SameSite == SameSiteStrict {
		return http.SameSiteStrictMode
	}
	return http.SameSiteLaxMode
}
