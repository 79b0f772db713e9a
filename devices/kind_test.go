package devices

import "testing"

func TestKindNames(t *testing.T) {
	tests := []struct {
		kind         Kind
		name, fleet  string
		n            int
		id, topic    string
		topicStream  string
		wantParsedOK bool
	}{
		{Sensor, "sensor", "sensors", 1, "s-0001", "sensors/s-0001/telemetry", StreamTelemetry, true},
		{Car, "car", "cars", 42, "c-0042", "cars/c-0042/alarm/engine-overheat", StreamEngineOverheat, true},
		{Panel, "panel", "panels", 12345, "p-12345", "panels/p-12345/cmd/reply", StreamReply, true},
	}
	for _, tt := range tests {
		if got := tt.kind.String(); got != tt.name {
			t.Errorf("got %q, want %q", got, tt.name)
		}
		if got := tt.kind.Fleet(); got != tt.fleet {
			t.Errorf("got fleet %q, want %q", got, tt.fleet)
		}
		if got := DeviceID(tt.kind, tt.n); got != tt.id {
			t.Errorf("DeviceID(%v, %d): got %q, want %q", tt.kind, tt.n, got, tt.id)
		}
		if got := Topic(tt.kind, tt.id, tt.topicStream); got != tt.topic {
			t.Errorf("Topic: got %q, want %q", got, tt.topic)
		}
		k, id, stream, ok := ParseTopic(tt.topic)
		if k != tt.kind || id != tt.id || stream != tt.topicStream || !ok {
			t.Errorf("ParseTopic(%q): got %v, %q, %q, %v, want %v, %q, %q, true", tt.topic, k, id, stream, ok, tt.kind, tt.id, tt.topicStream)
		}
	}
	if got := Kind(9).String(); got != "kind(9)" {
		t.Errorf("got %q, want kind(9)", got)
	}
}

func TestParseTopicRejects(t *testing.T) {
	for _, topic := range []string{"", "sensors", "sensors/s-0001", "sensors//telemetry", "sensors/s-0001/", "trucks/t-0001/telemetry"} {
		if _, _, _, ok := ParseTopic(topic); ok {
			t.Errorf("ParseTopic(%q): got ok, want not a device topic", topic)
		}
	}
}
