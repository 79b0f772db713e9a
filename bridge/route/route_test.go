package route

import (
	"testing"

	"github.com/fluxo-io/fluxo/bridge/spool"
)

func TestParseRoute(t *testing.T) {
	tests := []struct {
		in      string
		want    Route
		wantErr bool
	}{
		{in: "#=telemetry", want: Route{Filter: "#", Topic: "telemetry"}},
		{in: "+/+/alarm/#=alarms,lane=alarm", want: Route{Filter: "+/+/alarm/#", Topic: "alarms", Lane: spool.Alarm}},
		{in: "a/b=t,key=clientid", want: Route{Filter: "a/b", Topic: "t", Key: KeyClientID}},
		{in: "a/b=t,key=device,lane=telemetry", want: Route{Filter: "a/b", Topic: "t"}},
		{in: "a/b=t,lane=alarm,key=clientid", want: Route{Filter: "a/b", Topic: "t", Lane: spool.Alarm, Key: KeyClientID}},
		// filters may hold '=' and ','
		{in: "k=v/#=kv", want: Route{Filter: "k=v/#", Topic: "kv"}},
		{in: "a,b/#=ab,lane=alarm", want: Route{Filter: "a,b/#", Topic: "ab", Lane: spool.Alarm}},
		{in: "", wantErr: true},
		{in: "telemetry", wantErr: true},
		{in: "=telemetry", wantErr: true},
		{in: "#=", wantErr: true},
		{in: "a/#/b=t", wantErr: true},
		{in: "#=bad topic", wantErr: true},
		{in: "#=t,lane=fast", wantErr: true},
		{in: "#=t,key=user", wantErr: true},
		{in: "#=t,lane=", wantErr: true},
		{in: "#=t,color=red", wantErr: true},
		{in: "#=..", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseRoute(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseRoute(%q): got %+v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRoute(%q): got error %v, want %+v", tt.in, err, tt.want)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseRoute(%q): got %+v, want %+v", tt.in, got, tt.want)
		}
		// The flag form reads back.
		back, err := ParseRoute(got.String())
		if err != nil || back != got {
			t.Errorf("ParseRoute(%q.String() = %q): got %+v, %v, want %+v", tt.in, got.String(), back, err, got)
		}
	}
}

func TestRouteUnmarshalText(t *testing.T) {
	var r Route
	if err := r.UnmarshalText([]byte("+/+/alarm/#=alarms,lane=alarm")); err != nil {
		t.Fatal(err)
	}
	if r.Topic != "alarms" || r.Lane != spool.Alarm {
		t.Fatalf("got %+v, want alarms on the alarm lane", r)
	}
	b, _ := r.MarshalText()
	if string(b) != "+/+/alarm/#=alarms,lane=alarm,key=device" {
		t.Fatalf("got %q, want +/+/alarm/#=alarms,lane=alarm,key=device", b)
	}
}

func TestDefaultRouting(t *testing.T) {
	rt := NewRouter(DefaultRoutes(), "e1")
	tests := []struct {
		topic, client string
		wantTopic     string
		wantLane      spool.Lane
		wantKey       string
	}{
		{"fleet-a/car-7/gps", "c1", "telemetry", spool.Telemetry, "car-7"},
		{"fleet-a/car-7/gps/fix", "c1", "telemetry", spool.Telemetry, "car-7"},
		{"fleet-a/car-7/alarm", "c1", "alarms", spool.Alarm, "car-7"},
		{"fleet-a/car-7/alarm/fire", "c1", "alarms", spool.Alarm, "car-7"},
		{"fleet-a/car-7/cmd/reply", "c1", "command-acks", spool.Alarm, "car-7"},
		{"fleet-a/car-7/cmd/reboot", "c1", "telemetry", spool.Telemetry, "car-7"},
		{"fleet-a/car-7/state", "c1", "state", spool.Telemetry, "car-7"},
		{"fleet-a/car-7/state/extra", "c1", "telemetry", spool.Telemetry, "car-7"},
		{"fleet-a/car-7", "c1", "telemetry", spool.Telemetry, "c1"},
		{"hello", "c1", "telemetry", spool.Telemetry, "c1"},
		{"fleet-a//temp", "c1", "telemetry", spool.Telemetry, "c1"},
		{"/car-7/temp", "c1", "telemetry", spool.Telemetry, "car-7"},
	}
	for _, tt := range tests {
		r, key, ok := rt.Match(tt.topic, tt.client)
		if !ok {
			t.Errorf("Match(%q): no route, want %s", tt.topic, tt.wantTopic)
			continue
		}
		if r.Topic != tt.wantTopic || r.Lane != tt.wantLane || key != tt.wantKey {
			t.Errorf("Match(%q): got %s/%s key %q, want %s/%s key %q", tt.topic, r.Topic, r.Lane, key, tt.wantTopic, tt.wantLane, tt.wantKey)
		}
	}
	if _, _, ok := rt.Match("$SYS/x", "c1"); ok {
		t.Errorf("Match($SYS/x): got a route, want none ('#' does not match $-topics)")
	}
}

func TestRoutingFirstMatchAndClientKey(t *testing.T) {
	rt := NewRouter([]Route{
		{Filter: "site/+/door", Topic: "doors", Key: KeyClientID},
		{Filter: "site/#", Topic: "site"},
	}, "e1")
	r, key, ok := rt.Match("site/lobby/door", "panel-3")
	if !ok || r.Topic != "doors" || key != "panel-3" {
		t.Fatalf("got %v %q %v, want doors keyed by client id panel-3", r.Topic, key, ok)
	}
	r, key, ok = rt.Match("site/lobby/temp", "panel-3")
	if !ok || r.Topic != "site" || key != "lobby" {
		t.Fatalf("got %v %q %v, want site keyed by lobby", r.Topic, key, ok)
	}
	if _, _, ok := rt.Match("other/x/y", "panel-3"); ok {
		t.Fatalf("got a route for other/x/y, want none")
	}
}
