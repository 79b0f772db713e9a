package devices

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Errorf("got %v, want DefaultConfig to be valid", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string // substring; "" for valid
	}{
		{"bare host:port", func(c *Config) { c.Broker = "127.0.0.1:1883" }, ""},
		{"port only", func(c *Config) { c.Broker = ":1883" }, ""},
		{"ssl", func(c *Config) { c.Broker = "ssl://broker.example:8883" }, ""},
		{"websocket without port", func(c *Config) { c.Broker = "wss://broker.example/mqtt" }, ""},
		{"only panels", func(c *Config) { c.Sensors, c.Cars, c.Rate = 0, 0, 0 }, ""},
		{"half a message a second", func(c *Config) { c.Rate = 0.5 }, ""},
		{"no broker", func(c *Config) { c.Broker = "" }, "no broker"},
		{"unknown scheme", func(c *Config) { c.Broker = "http://127.0.0.1:1883" }, `unknown scheme "http"`},
		{"no port", func(c *Config) { c.Broker = "tcp://127.0.0.1" }, "want host and port"},
		{"password alone", func(c *Config) { c.Password = "secret" }, "password needs a username"},
		{"negative count", func(c *Config) { c.Cars = -1 }, "negative device count"},
		{"no devices", func(c *Config) { c.Sensors, c.Cars, c.Panels = 0, 0, 0 }, "no devices"},
		{"zero rate", func(c *Config) { c.Rate = 0 }, "rate 0"},
		{"huge rate", func(c *Config) { c.Rate = 5000 }, "rate 5000"},
		{"zero panel rate", func(c *Config) { c.PanelRate = 0 }, "panel rate 0"},
		{"negative alarm rate", func(c *Config) { c.AlarmRate = -1 }, "alarm rate -1"},
		{"qos 3", func(c *Config) { c.QoS = 3 }, "qos 3"},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }, "negative duration"},
		{"no connect timeout", func(c *Config) { c.ConnectTimeout = 0 }, "ConnectTimeout"},
		{"no reconnect interval", func(c *Config) { c.MaxReconnectInterval = 0 }, "MaxReconnectInterval"},
		{"no pending", func(c *Config) { c.MaxPending = 0 }, "MaxPending 0"},
		{"negative drain", func(c *Config) { c.DrainTimeout = -1 }, "DrainTimeout"},
		{"no report interval", func(c *Config) { c.ReportInterval = 0 }, "ReportInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			case err != nil && !strings.HasPrefix(err.Error(), "devices: "):
				t.Errorf("got %q, want it prefixed with \"devices: \"", err)
			}
		})
	}
}

func TestBrokerURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"tcp://127.0.0.1:1883", "tcp://127.0.0.1:1883"},
		{"127.0.0.1:1883", "tcp://127.0.0.1:1883"},
		{":1883", "tcp://127.0.0.1:1883"},
		{"ws://h:80/mqtt", "ws://h:80/mqtt"},
	}
	for _, tt := range tests {
		if got := brokerURL(tt.in); got != tt.want {
			t.Errorf("brokerURL(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
