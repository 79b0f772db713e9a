package edge

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/fluxo-io/fluxo/bridge/uplink"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// TestConsoleEdge: the edge serves its page at / and /api/edge reports
// the lanes, with records delivered to the core and a latency once they
// are acknowledged.
func TestConsoleEdge(t *testing.T) {
	c := startCoreNode(t)
	n := startEdgeNode(t, c.KafkaAddr(), t.TempDir())
	base := "http://" + n.HTTPAddr()

	page := httpGet(t, base+"/")
	for _, want := range []string{"<title>fluxo edge</title>", "/console/page.js"} {
		if !strings.Contains(page, want) {
			t.Errorf("GET /: got no %q in the page", want)
		}
	}
	if js := httpGet(t, base+"/console/console.js"); !strings.Contains(js, "getJSON") {
		t.Errorf("GET /console/console.js: got %.60q, want the shared script", js)
	}

	cl := mustConnect3(t, tcpURL(n.MQTTAddr()), "console-dev", nil)
	for i := 0; i < 5; i++ {
		if err := publish3(t, cl, "fleet/console-dev/alarm/x", 1, false, "a"); err != nil {
			t.Fatal(err)
		}
	}
	var got ConsoleEdge
	testutil.Eventually(t, "5 alarms delivered in /api/edge", func() bool {
		if err := json.Unmarshal([]byte(httpGet(t, base+"/api/edge")), &got); err != nil {
			t.Fatalf("/api/edge: %v", err)
		}
		for _, l := range got.Lanes {
			if l.Lane == "alarm" && l.Delivered == 5 {
				return true
			}
		}
		return false
	})
	if got.EdgeID == "" || got.SpoolMaxBytes <= 0 || len(got.Lanes) != 2 {
		t.Fatalf("got edge id %q, budget %d, %d lanes; want an id, a budget and 2 lanes", got.EdgeID, got.SpoolMaxBytes, len(got.Lanes))
	}
	for _, l := range got.Lanes {
		if l.Lane != "alarm" {
			continue
		}
		if l.Accepted != 5 || l.Records != 5 || l.LatencyP50 <= 0 || l.LatencyP99 < l.LatencyP50 || l.BatchRecords <= 0 {
			t.Errorf("alarm lane: got accepted %d, records %d, p50 %v, p99 %v, batch %v; want 5, 5, p50 > 0, p99 >= p50, batch > 0",
				l.Accepted, l.Records, l.LatencyP50, l.LatencyP99, l.BatchRecords)
		}
	}
}

func TestQuantile(t *testing.T) {
	h := uplink.Latency{Buckets: map[float64]uint64{0.001: 50, 0.01: 90, 0.1: 99, 1: 100}, Count: 100}
	for _, c := range []struct{ q, want float64 }{{0.5, 0.001}, {0.9, 0.01}, {0.95, 0.1}, {0.99, 0.1}, {1, 1}} {
		if got := quantile(h, c.q); got != c.want {
			t.Errorf("quantile %v: got %v, want %v", c.q, got, c.want)
		}
	}
	if got := quantile(uplink.Latency{}, 0.5); got != -1 {
		t.Errorf("empty histogram: got %v, want -1", got)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: got %d %s, want 200", url, resp.StatusCode, b)
	}
	return string(b)
}
