package cluster

import (
	"maps"
	"testing"
)

func TestListenersTag(t *testing.T) {
	ls := map[string]string{"CLIENT": "core-1.example:9093", "INTERNAL": "10.0.0.1:9094", "V6": "[::1]:9095"}
	s := formatListeners(ls)
	if want := "CLIENT://core-1.example:9093,INTERNAL://10.0.0.1:9094,V6://[::1]:9095"; s != want {
		t.Fatalf("formatListeners = %q, want %q", s, want)
	}
	if got := parseListeners(s); !maps.Equal(got, ls) {
		t.Fatalf("parseListeners(%q) = %v, want %v", s, got, ls)
	}
	for _, bad := range []string{"", "CLIENT", "://h:1", "CLIENT://nohost", ","} {
		if got := parseListeners(bad); got != nil {
			t.Errorf("parseListeners(%q) = %v, want nil", bad, got)
		}
	}
}

func TestBrokerEndpoint(t *testing.T) {
	single := BrokerInfo{KafkaAddr: "h:9092"}
	multi := BrokerInfo{KafkaAddr: "h:9094", Listeners: map[string]string{"CLIENT": "h:9093", "INTERNAL": "h:9094"}}
	for _, tc := range []struct {
		b        BrokerInfo
		listener string
		want     string
		ok       bool
	}{
		{single, "PLAINTEXT", "h:9092", true},
		{single, "CLIENT", "h:9092", true},
		{multi, "CLIENT", "h:9093", true},
		{multi, "INTERNAL", "h:9094", true},
		{multi, "OTHER", "", false},
		{BrokerInfo{}, "PLAINTEXT", "", false},
	} {
		got, ok := tc.b.Endpoint(tc.listener)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%+v.Endpoint(%s) = %q, %v; want %q, %v", tc.b, tc.listener, got, ok, tc.want, tc.ok)
		}
	}
}
