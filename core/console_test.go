package core

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-io/fluxo/internal/testutil"
)

func getBody(t *testing.T, url string) []byte {
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
	return b
}

// TestConsoleAPIs: the core serves its page at /, and /api/cluster,
// /api/topics, /api/groups and /api/requests report this broker, a
// produced topic's partitions with offsets and disk, a group's lag and
// the requests served.
func TestConsoleAPIs(t *testing.T) {
	node := startNode(t, t.TempDir())
	base := "http://" + node.HTTPAddr()
	if page := string(getBody(t, base+"/")); !strings.Contains(page, "<title>fluxo core</title>") {
		t.Fatalf("GET /: got %.80q, want the core's page", page)
	}
	p := client(t, node, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := 0; i < 4; i++ {
		if err := p.ProduceSync(ctxT(t), &kgo.Record{Topic: "con", Partition: 0, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A group that consumes 4 records and commits.
	g := client(t, node, kgo.ConsumerGroup("con-group"), kgo.ConsumeTopics("con"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	n := 0
	for n < 4 {
		fs := g.PollFetches(ctxT(t))
		n += len(fs.Records())
	}
	if err := g.CommitUncommittedOffsets(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctxT(t), &kgo.Record{Topic: "con", Partition: 0, Value: []byte("later")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var cl ConsoleCluster
	json.Unmarshal(getBody(t, base+"/api/cluster"), &cl)
	if cl.Node != 1 || cl.Controller != 1 || len(cl.Members) != 1 || cl.Members[0].Status != "alive" {
		t.Errorf("/api/cluster: got %+v, want broker 1, controller 1, one alive member", cl)
	}

	var topics []ConsoleTopic
	json.Unmarshal(getBody(t, base+"/api/topics"), &topics)
	var con *ConsoleTopic
	for i := range topics {
		if topics[i].Name == "con" {
			con = &topics[i]
		}
	}
	if con == nil || len(con.Partitions) != 3 {
		t.Fatalf("/api/topics: got %+v, want topic con with 3 partitions", topics)
	}
	p0 := con.Partitions[0]
	if p0.Leader != 1 || !p0.Local || p0.HighWatermark != 5 || p0.DiskBytes <= 0 || p0.UnderReplicated {
		t.Errorf("con/0: got %+v, want leader 1, local, high watermark 5, disk > 0, not under-replicated", p0)
	}

	testutil.Eventually(t, "con-group's lag of 1 in /api/groups", func() bool {
		var groups []ConsoleGroup
		json.Unmarshal(getBody(t, base+"/api/groups"), &groups)
		for _, g := range groups {
			if g.Group == "con-group" && g.Lag == 1 && len(g.Partitions) == 1 && g.Partitions[0].Committed == 4 {
				return true
			}
		}
		return false
	})

	var reqs map[string]float64
	json.Unmarshal(getBody(t, base+"/api/requests"), &reqs)
	if reqs["Produce"] < 5 || reqs["Fetch"] < 1 {
		t.Errorf("/api/requests: got %v, want at least 5 Produce and 1 Fetch", reqs)
	}
}
