package oidcauth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgefort/edgefort/clientapi/auth"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		return Config{Issuer: "https://idp.example.com", ClientID: "edge", ClientSecret: "s"}
	}
	tests := []struct {
		name   string
		change func(*Config)
		field  string // "" means valid
		says   string
	}{
		{"valid", func(*Config) {}, "", ""},
		{"plain http issuer", func(c *Config) { c.Issuer = "http://idp.example.com" }, "issuer", "https URL"},
		{"no issuer", func(c *Config) { c.Issuer = "" }, "issuer", "https URL"},
		{"no client id", func(c *Config) { c.ClientID = "" }, "client_id", "required"},
		{"no secret", func(c *Config) { c.ClientSecret = "" }, "client_secret", "required"},
		{"token auth", func(c *Config) { c.TokenAuth = "none" }, "token_auth", `"none"`},
		{"relative callback", func(c *Config) { c.CallbackPath = "cb" }, "callback_path", "absolute path"},
		{"wildcard path", func(c *Config) { c.LoginPath = "/{x}" }, "login_path", "wildcards"},
		{"paths clash", func(c *Config) { c.JWKSPath = DefaultCallbackPath }, "jwks_path", "callback_path"},
		{"RSA1_5", func(c *Config) { c.EncryptionAlgorithms = []string{"RSA1_5"} }, "encryption_algorithms", `"RSA1_5"`},
		{"long login", func(c *Config) { c.LoginTimeout = 2 * time.Hour }, "login_timeout", "1h"},
		{"negative bound", func(c *Config) { c.MaxPendingLogins = -1 }, "max_pending_logins", "-1"},
		{"display name with a control character", func(c *Config) { c.DisplayName = "a\x1bb" }, "display_name", "control"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			c.SetDefaults()
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var fe *auth.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Error(), tc.says) {
				t.Fatalf("Validate = %v, want a %s error saying %q", err, tc.field, tc.says)
			}
		})
	}
}

func TestSafeReturn(t *testing.T) {
	for in, want := range map[string]string{
		"/app/page?x=1":        "/app/page?x=1",
		"":                     "/",
		"//evil.example/x":     "/",
		"https://evil.example": "/",
		"/\\evil.example":      "/",
		"app":                  "/",
		"/a\r\nSet-Cookie: x":  "/",
	} {
		if got := safeReturn(in); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", in, got, want)
		}
	}
}
