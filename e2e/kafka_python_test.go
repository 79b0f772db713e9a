//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kpySummary is what testdata/kafka_python_group.py prints.
type kpySummary struct {
	AdminAttempts  int      `json:"admin_attempts"`
	AdminErrors    []string `json:"admin_errors"`
	AdminStarted   bool     `json:"admin_started"`
	Produced       int      `json:"produced"`
	DeliveryErrors []string `json:"delivery_errors"`
	Consumers      []struct {
		Name               string   `json:"name"`
		Records            int      `json:"records"`
		Assigned           []int32  `json:"assigned"`
		EverAssigned       []int32  `json:"ever_assigned"`
		CommitErrors       []string `json:"commit_errors"`
		RevokeCommitErrors []string `json:"revoke_commit_errors"`
	} `json:"consumers"`
	Deliveries     int               `json:"deliveries"`
	Unique         int               `json:"unique"`
	Duplicates     int               `json:"duplicates"`
	WithHeaders    int               `json:"with_headers"`
	BadRecords     []string          `json:"bad_records"`
	Committed      map[string]*int64 `json:"committed"`
	CommittedTotal int64             `json:"committed_total"`
	EndOffsets     map[string]int64  `json:"end_offsets"`
	ClientLog      []string          `json:"client_log"`
	Done           bool              `json:"done"`
	Error          string            `json:"error"`
}

// TestKafkaPython runs testdata/kafka_python_group.py, on kafka-python
// (Debian's python3-kafka, a pure-Python client, independent of librdkafka
// and of franz-go), against one fluxo core process: the KafkaAdminClient
// creates a topic of 4 partitions, a KafkaProducer (acks='all') writes
// 2,000 keyed records with headers, and two KafkaConsumers of one group
// (range assignor) read them and commit synchronously. It checks that every
// record arrives once, with its key, value and headers; that both consumers
// hold partitions and read records; that the committed offsets are the end
// offsets; and that the broker refused none of the clients' requests.
func TestKafkaPython(t *testing.T) {
	t.Parallel()
	const (
		n          = 2000
		partitions = 4
		topic      = "kafka-python-group"
	)
	kpyNeedModule(t)
	core := startCore(t, buildFluxo(t))

	// The clients pass api_version=(2, 4, 0); the script says why.
	out := run(t, 40*time.Second, nil, python, "testdata/kafka_python_group.py",
		"--bootstrap", core.kafka, "--topic", topic, "--group", topic,
		"--records", strconv.Itoa(n), "--partitions", strconv.Itoa(partitions),
		"--api-version", "2.4.0", "--timeout", "30")
	var s kpySummary
	if err := json.Unmarshal(bytes.TrimSpace(out), &s); err != nil {
		t.Fatalf("kafka_python_group.py: cannot parse the summary: %v\n%s", err, out)
	}
	t.Logf("summary: %s", bytes.TrimSpace(out))
	for _, l := range s.ClientLog {
		t.Logf("kafka-python: %s", l)
	}

	// kafka-python sends only requests a Kafka broker serves, so a
	// connection closed on an unsupported one is a broker gap.
	if refused := kpyRefused(core.logs.String()); len(refused) > 0 {
		t.Errorf("requests fluxo refused (closing the connection): got %s, want none", strings.Join(refused, ", "))
	}
	if !s.AdminStarted || s.AdminAttempts != 1 {
		// A KafkaAdminClient probes the broker's version, sending a
		// Metadata v0 request after each probe request, whatever its
		// api_version.
		errs := slices.Clone(s.AdminErrors)
		slices.Sort(errs)
		t.Errorf("KafkaAdminClient: got %d starts, started %v (distinct errors: %q); want 1 start, started",
			s.AdminAttempts, s.AdminStarted, slices.Compact(errs))
	}
	if !s.AdminStarted {
		t.FailNow()
	}
	if s.Error != "" || !s.Done {
		t.Errorf("kafka_python_group.py: got error %q, done %v; want no error, done", s.Error, s.Done)
	}
	if s.Produced != n || len(s.DeliveryErrors) > 0 {
		t.Errorf("produced: got %d acknowledged, delivery errors %q; want %d, none", s.Produced, s.DeliveryErrors, n)
	}
	if len(s.BadRecords) > 0 {
		t.Errorf("records whose value or headers do not match the key: got %q, want none", s.BadRecords)
	}
	if s.WithHeaders != s.Deliveries || s.Deliveries == 0 {
		t.Errorf("records with their key, value and headers intact: got %d of %d, want all", s.WithHeaders, s.Deliveries)
	}
	if s.Unique != n {
		t.Errorf("distinct records consumed: got %d, want %d", s.Unique, n)
	}
	if s.Duplicates != 0 {
		var revokeErrs []string
		for _, c := range s.Consumers {
			revokeErrs = append(revokeErrs, c.RevokeCommitErrors...)
		}
		t.Errorf("records consumed twice: got %d, want 0 (commit errors on revoke: %q)", s.Duplicates, revokeErrs)
	}

	if len(s.Consumers) != 2 {
		t.Fatalf("consumers: got %d, want 2", len(s.Consumers))
	}
	var all []int32
	sum := 0
	for _, c := range s.Consumers {
		if len(c.Assigned) == 0 || c.Records == 0 {
			t.Errorf("%s: got partitions %v and %d records, want some of each", c.Name, c.Assigned, c.Records)
		}
		if len(c.CommitErrors) > 0 || len(c.RevokeCommitErrors) > 0 {
			t.Errorf("%s: got commit errors %q and on revoke %q, want none", c.Name, c.CommitErrors, c.RevokeCommitErrors)
		}
		all = append(all, c.Assigned...)
		sum += c.Records
	}
	slices.Sort(all)
	if want := []int32{0, 1, 2, 3}; !slices.Equal(all, want) {
		t.Errorf("partitions held by the two consumers together: got %v, want %v, each once", all, want)
	}
	if sum != s.Deliveries {
		t.Errorf("records per consumer: got %d in total, want %d (all deliveries)", sum, s.Deliveries)
	}

	if s.CommittedTotal != n {
		t.Errorf("committed offsets: got %d in total (%s), want %d", s.CommittedTotal, kpyOffsets(s.Committed), n)
	}
	var endTotal int64
	for p := range partitions {
		key := strconv.Itoa(p)
		end, ok := s.EndOffsets[key]
		if !ok {
			t.Errorf("partition %d: got no end offset, want one", p)
			continue
		}
		endTotal += end
		if c := s.Committed[key]; c == nil || *c != end {
			t.Errorf("partition %d: got committed offset %s, want the end offset %d", p, kpyOffset(c), end)
		}
	}
	if endTotal != n {
		t.Errorf("end offsets: got %d in total (%v), want %d", endTotal, s.EndOffsets, n)
	}
}

// kpyRefused lists the requests that fluxo core's debug log says it closed
// a connection on, as "Metadata v0 (3 times)".
func kpyRefused(logs string) []string {
	counts := map[string]int{}
	var order []string
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			API     string `json:"api"`
			Version int16  `json:"version"`
			Message string `json:"message"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || !strings.HasPrefix(e.Message, "unsupported api or version") {
			continue
		}
		req := fmt.Sprintf("%s v%d", e.API, e.Version)
		if counts[req] == 0 {
			order = append(order, req)
		}
		counts[req]++
	}
	var out []string
	for _, req := range order {
		if counts[req] == 1 {
			out = append(out, req+" (once)")
		} else {
			out = append(out, fmt.Sprintf("%s (%d times)", req, counts[req]))
		}
	}
	return out
}

// kpyOffset prints a committed offset, or "none" for a partition without a
// commit (kafka-python's None).
func kpyOffset(o *int64) string {
	if o == nil {
		return "none"
	}
	return strconv.FormatInt(*o, 10)
}

func kpyOffsets(m map[string]*int64) string {
	var parts []string
	for p, o := range m {
		parts = append(parts, p+":"+kpyOffset(o))
	}
	slices.Sort(parts)
	return "map[" + strings.Join(parts, " ") + "]"
}

func kpyNeedModule(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import kafka; print(kafka.__version__)").CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: got %v, want Debian's python3 (apt-get install python3)", python, err)
		}
		t.Fatalf("%s -c 'import kafka': got %v, want it importable (apt-get install python3-kafka; .ci/run does it)\n%s", python, err, out)
	}
	t.Logf("kafka-python %s", bytes.TrimSpace(out))
}
