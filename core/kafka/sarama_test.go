package kafka

import (
	"testing"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestApiVersionsSarama checks our ApiVersions with a second, independent
// client: sarama negotiates ApiVersions itself when it opens a broker.
func TestApiVersionsSarama(t *testing.T) {
	s := startServer(t, testConfig(t), registerHeartbeat)

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_0_0_0
	cfg.ApiVersionsRequest = true
	b := sarama.NewBroker(s.Addr().String())
	if err := b.Open(cfg); err != nil {
		t.Fatalf("open: got %v, want nil", err)
	}
	defer b.Close()

	resp, err := b.ApiVersions(&sarama.ApiVersionsRequest{Version: 3, ClientSoftwareName: "sarama", ClientSoftwareVersion: "1.61.1"})
	if err != nil {
		t.Fatalf("ApiVersions: got %v, want nil", err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("error code: got %d, want 0", resp.ErrorCode)
	}
	got := map[int16][2]int16{}
	for _, k := range resp.ApiKeys {
		got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	want := map[int16][2]int16{12: {0, 2}, 18: {0, kmsg.NewPtrApiVersionsRequest().MaxVersion()}}
	if len(got) != len(want) || got[12] != want[12] || got[18] != want[18] {
		t.Fatalf("api keys: got %v, want %v", got, want)
	}
}
