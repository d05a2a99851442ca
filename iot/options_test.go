package iot

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestNewValidates(t *testing.T) {
	valid := func() Options {
		return Options{
			Host:        "abc-ats.iot.eu-west-1.amazonaws.com",
			Region:      "eu-west-1",
			ThingName:   "fort-1",
			Credentials: aws.AnonymousCredentials{},
			TLS:         &tls.Config{},
		}
	}
	handler := func(context.Context, Message) error { return nil }
	tests := []struct {
		name    string
		mutate  func(o *Options)
		wantErr []string // substrings; nil means valid
	}{
		{"defaults", func(*Options) {}, nil},
		{"with subscriptions", func(o *Options) { o.Subscriptions = []string{"a/#"}; o.Handler = handler }, nil},
		{"everything missing", func(o *Options) { *o = Options{} },
			[]string{"host: required", "region: required", "thing_name: required", "credentials: required", "tls: required"}},
		{"thing name too long", func(o *Options) { o.ThingName = strings.Repeat("x", 129) }, []string{"thing_name: 129 bytes"}},
		{"keep-alive below AWS's", func(o *Options) { o.KeepAlive = 10 * time.Second }, []string{"keep_alive: 10s"}},
		{"keep-alive above AWS's", func(o *Options) { o.KeepAlive = 21 * time.Minute }, []string{"keep_alive: 21m0s"}},
		{"first retry over 1s", func(o *Options) { o.ReconnectInitial = 2 * time.Second }, []string{"reconnect_initial: 2s"}},
		{"max below initial", func(o *Options) { o.ReconnectMax = 500 * time.Millisecond; o.ReconnectInitial = time.Second }, []string{"reconnect_max: 500ms"}},
		{"spread above max", func(o *Options) { o.ReconnectSpread = 3 * time.Minute }, []string{"reconnect_spread: 3m0s, must be in (0, reconnect_max 2m0s]"}},
		{"negative spread", func(o *Options) { o.ReconnectSpread = -time.Second }, []string{"reconnect_spread: -1s"}},
		{"throttled max below max", func(o *Options) { o.ReconnectThrottledMax = time.Minute }, []string{"reconnect_throttled_max: 1m0s is less than reconnect_max 2m0s"}},
		{"age over 24h", func(o *Options) { o.MaxConnectionAge = 25 * time.Hour }, []string{"max_connection_age: 25h0m0s"}},
		{"subscriptions without handler", func(o *Options) { o.Subscriptions = []string{"a"} }, []string{"handler: required"}},
		{"empty filter", func(o *Options) { o.Subscriptions = []string{"a", ""}; o.Handler = handler }, []string{"subscriptions[1]: empty"}},
		{"negative workers", func(o *Options) { o.Workers = -1 }, []string{"workers: negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.mutate(&o)
			l, err := New(o)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("New = %v, want nil", err)
				}
				if got := l.Status().State; got != StateStopped {
					t.Errorf("state = %q, want %q", got, StateStopped)
				}
				return
			}
			if err == nil {
				t.Fatalf("New = nil, want errors %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	got := []time.Duration{o.KeepAlive, o.ReconnectInitial, o.ReconnectSpread, o.ReconnectMax, o.ReconnectThrottledMax, o.MaxConnectionAge, o.ConnectTimeout}
	want := []time.Duration{5 * time.Minute, time.Second, 40 * time.Second, 2 * time.Minute, 32 * time.Minute, 23 * time.Hour, 30 * time.Second}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("default %d = %v, want %v", i, got[i], want[i])
		}
	}
	if small := (Options{ReconnectMax: 10 * time.Second}).withDefaults(); small.ReconnectSpread != 10*time.Second {
		t.Errorf("spread with a 10s max = %v, want the max", small.ReconnectSpread)
	} else if small.ReconnectThrottledMax != 160*time.Second {
		t.Errorf("throttled max with a 10s max = %v, want 16 × the max", small.ReconnectThrottledMax)
	}
	if o.Workers != 4 || o.Dial == nil || o.Presign == nil || o.Logger == nil || o.Now == nil {
		t.Errorf("defaults not filled: workers %d, dial %v, presign %v", o.Workers, o.Dial != nil, o.Presign != nil)
	}
}
