package forward

import (
	"context"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/bridge/downlink"
	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/bridge/uplink"
)

func testConfig(t *testing.T) Config {
	sc := spool.DefaultConfig()
	sc.SegmentBytes = 1 << 20
	sc.MaxMessageBytes = 64 << 10
	uc := uplink.DefaultConfig()
	uc.ClientID = ""
	uc.Brokers = []string{"127.0.0.1:1"} // never dialled: nothing is started
	return Config{Name: "fluxo-edge-e1", SpoolDir: t.TempDir(), Spool: sc, Uplink: uc}
}

// TestNewDerivedSettings: settings left empty are derived from the name
// and the uplink; settings given are kept, even when they equal a
// package's default.
func TestNewDerivedSettings(t *testing.T) {
	tests := []struct {
		name                  string
		uplinkID              string
		down                  downlink.Config
		wantUplinkID          string
		wantGroup, wantDownID string
		wantBrokers           []string
	}{
		{
			name:         "empty: derived",
			down:         downlink.Config{Topic: "commands"},
			wantUplinkID: "fluxo-edge-e1", wantGroup: "fluxo-edge-e1-downlink", wantDownID: "fluxo-edge-e1-downlink",
			wantBrokers: []string{"127.0.0.1:1"},
		},
		{
			name:         "defaults given explicitly: kept",
			uplinkID:     uplink.DefaultConfig().ClientID,
			down:         downlink.DefaultConfig(),
			wantUplinkID: uplink.DefaultConfig().ClientID, wantGroup: downlink.DefaultConfig().Group,
			wantDownID: downlink.DefaultConfig().ClientID, wantBrokers: downlink.DefaultConfig().Brokers,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Uplink.ClientID = tt.uplinkID
			cfg.Downlink = &tt.down
			f, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Stop(context.Background())
			got := f.Config()
			if got.Uplink.ClientID != tt.wantUplinkID {
				t.Errorf("uplink client id: got %q, want %q", got.Uplink.ClientID, tt.wantUplinkID)
			}
			if got.Downlink.Group != tt.wantGroup || got.Downlink.ClientID != tt.wantDownID {
				t.Errorf("downlink group, client id: got %q, %q, want %q, %q", got.Downlink.Group, got.Downlink.ClientID, tt.wantGroup, tt.wantDownID)
			}
			if !reflect.DeepEqual(got.Downlink.Brokers, tt.wantBrokers) {
				t.Errorf("downlink brokers: got %v, want %v", got.Downlink.Brokers, tt.wantBrokers)
			}
		})
	}
}

// TestLearnsFleets: with a downlink, the forwarder learns each device's
// fleet from the MQTT topics of what it stores, for the downlink to
// address commands; the messages reach the spool.
func TestLearnsFleets(t *testing.T) {
	cfg := testConfig(t)
	cfg.Downlink = &downlink.Config{Topic: "commands"}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop(context.Background())
	rt := route.NewRouter(route.DefaultRoutes(), "e1")
	for _, topic := range []string{"north/car-7/gps", "south/car-9/alarm/fire", "flat"} {
		m, ok := rt.Message(route.Publish{Topic: topic, ClientID: "c", Payload: []byte("x")})
		if !ok {
			t.Fatalf("no route for %s", topic)
		}
		if err := f.Append(m); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	if err := f.Submit(spool.Message{Lane: spool.Telemetry, Topic: "telemetry", Value: []byte("x"),
		Headers: []kmsg.Header{{Key: route.HeaderTopic, Value: []byte("north/car-9/temp")}}}, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for device, want := range map[string]string{"car-7": "north", "car-9": "north"} {
		if got, ok := f.fleets.lookup(device); !ok || got != want {
			t.Errorf("fleet of %s: got %q %v, want %q", device, got, ok, want)
		}
	}
	if got, ok := f.fleets.lookup("flat"); ok {
		t.Errorf("fleet of a topic without levels: got %q, want none", got)
	}
	var accepted int64
	for _, s := range f.Spool().Stats() {
		accepted += s.Accepted
	}
	if accepted != 4 {
		t.Errorf("spool accepted: got %d, want 4", accepted)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no name":      {SpoolDir: "d"},
		"no spool dir": {Name: "n"},
		"no topic":     {Name: "n", SpoolDir: "d", Downlink: &downlink.Config{}},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: got no error, want one", name)
		}
	}
}
