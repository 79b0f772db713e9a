package edge

import (
	"crypto/tls"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/fluxo-io/fluxo/bridge/route"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.AllowAnonymous = true
	if err := ok.Validate(); err != nil {
		t.Fatalf("default config with anonymous access: got %v, want nil", err)
	}
	if DefaultConfig().EdgeID == "" {
		t.Errorf("default edge id: got empty, want the host name")
	}

	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no auth", func(c *Config) { c.AllowAnonymous = false }},
		{"no listener", func(c *Config) { c.MQTTAddr = "" }},
		{"bad address", func(c *Config) { c.MQTTAddr = "localhost" }},
		{"tls without cert", func(c *Config) { c.TLSAddr = "127.0.0.1:8883" }},
		{"tls without address", func(c *Config) { c.TLS = &tls.Config{} }},
		{"tls without cert", func(c *Config) { c.TLSAddr = "127.0.0.1:8883"; c.TLS = &tls.Config{} }},
		{"no routes", func(c *Config) { c.Routes = nil }},
		{"bad route", func(c *Config) { c.Routes = []route.Route{{Filter: "#", Topic: "no spaces"}} }},
		{"tiny packets", func(c *Config) { c.MaxPacketSize = 10 }},
		{"no session expiry", func(c *Config) { c.MaxSessionExpiry = 0 }},
		{"huge session expiry", func(c *Config) { c.MaxSessionExpiry = 200 * 365 * 24 * time.Hour }},
		{"no message expiry", func(c *Config) { c.MaxMessageExpiry = 0 }},
		{"no clients", func(c *Config) { c.MaxClients = 0 }},
		{"no inflight", func(c *Config) { c.MaxInflight = 0 }},
		{"no receive maximum", func(c *Config) { c.ReceiveMaximum = 0 }},
		{"no writes pending", func(c *Config) { c.MaxWritesPending = 0 }},
		{"huge writes pending", func(c *Config) { c.MaxWritesPending = 1<<20 + 1 }},
		{"negative connect rate", func(c *Config) { c.MaxConnectRate = -1 }},
		{"infinite connect rate", func(c *Config) { c.MaxConnectRate = math.Inf(1) }},
		{"negative connect burst", func(c *Config) { c.MaxConnectBurst = -1 }},
		{"max headers below the edge's own", func(c *Config) { c.MaxHeaders = 10 }},
		{"max header bytes too small", func(c *Config) { c.MaxHeaderBytes = 100 }},
		{"no edge id", func(c *Config) { c.EdgeID = "" }},
	}
	for _, tt := range tests {
		c := ok
		tt.mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: got nil, want an error", tt.name)
		}
	}
}

func TestNewRefusesWithoutAuth(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MQTTAddr = "127.0.0.1:0"
	_, err := New(cfg, &recSink{})
	if !errors.Is(err, ErrNoAuth) {
		t.Fatalf("got %v, want ErrNoAuth", err)
	}
}

func TestNewFillsDefaults(t *testing.T) {
	e, err := New(Config{MQTTAddr: "127.0.0.1:0", AllowAnonymous: true}, &recSink{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.cfg.MaxPacketSize != DefaultMaxPacketSize || len(e.cfg.Routes) != len(route.DefaultRoutes()) || e.cfg.EdgeID == "" {
		t.Fatalf("got %+v, want defaults filled in", e.cfg)
	}
	caps := e.srv.Options.Capabilities
	if caps.MaximumPacketSize != DefaultMaxPacketSize || caps.MaximumSessionExpiryInterval != uint32(DefaultMaxSessionExpiry/time.Second) ||
		e.cfg.MaxClients != DefaultMaxClients || caps.ReceiveMaximum != DefaultReceiveMaximum || caps.MaximumInflight != DefaultMaxInflight {
		t.Fatalf("got capabilities %+v, want the defaults", caps)
	}
}
