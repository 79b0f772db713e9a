//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// confluentTxnSummary is what testdata/confluent_txn.py prints.
type confluentTxnSummary struct {
	Transactions   map[string]string `json:"transactions"`
	Delivered      map[string]int    `json:"delivered"`
	DeliveryErrors []string          `json:"delivery_errors"`
	Consumers      map[string]struct {
		Records    map[string]int `json:"records"`
		Unique     int            `json:"unique"`
		Duplicates int            `json:"duplicates"`
		Bad        []string       `json:"bad"`
		EOF        []int32        `json:"eof"`
	} `json:"consumers"`
	HighWatermarks map[string]int64 `json:"high_watermarks"`
	Done           bool             `json:"done"`
	Error          string           `json:"error"`
}

// TestConfluentTransactions runs testdata/confluent_txn.py, on
// confluent-kafka-python (librdkafka), against one fluxo core process: a
// transactional producer commits a transaction "a", aborts "b" and commits
// "c", each of n records over 3 partitions; a read_committed consumer then
// reads exactly the records of a and c, each once, and a read_uncommitted
// one those of all three. Each partition holds the records and one marker
// per transaction.
func TestConfluentTransactions(t *testing.T) {
	t.Parallel()
	const (
		n          = 600
		partitions = 3
		topic      = "confluent-txn"
	)
	needConfluentKafka(t)
	core := startCore(t, buildFluxo(t))

	out := run(t, 30*time.Second, nil, python, "testdata/confluent_txn.py",
		"--bootstrap", core.kafka, "--topic", topic, "--transactional-id", "confluent-txn-producer",
		"--records", strconv.Itoa(n), "--partitions", strconv.Itoa(partitions), "--timeout", "25")
	var s confluentTxnSummary
	if err := json.Unmarshal(bytes.TrimSpace(out), &s); err != nil {
		t.Fatalf("confluent_txn.py: cannot parse the summary: %v\n%s", err, out)
	}
	t.Logf("summary: %s", bytes.TrimSpace(out))
	if refused := kpyRefused(core.logs.String()); len(refused) > 0 {
		t.Errorf("requests fluxo refused (closing the connection): got %s, want none", strings.Join(refused, ", "))
	}
	if s.Error != "" || !s.Done {
		t.Fatalf("confluent_txn.py: got error %q, done %v; want no error, done", s.Error, s.Done)
	}
	for name, want := range map[string]string{"a": "committed", "b": "aborted", "c": "committed"} {
		if s.Transactions[name] != want {
			t.Errorf("transaction %s: got %q, want %q", name, s.Transactions[name], want)
		}
	}
	// An aborted transaction's records were flushed before the abort, so
	// the broker acknowledged them too.
	if len(s.DeliveryErrors) > 0 {
		t.Errorf("delivery errors: got %q, want none", s.DeliveryErrors)
	}
	for _, name := range []string{"a", "b", "c"} {
		if s.Delivered[name] != n {
			t.Errorf("transaction %s: got %d records acknowledged, want %d", name, s.Delivered[name], n)
		}
	}

	want := map[string]map[string]int{
		"read_committed":   {"a": n, "b": 0, "c": n},
		"read_uncommitted": {"a": n, "b": n, "c": n},
	}
	for level, wantRecs := range want {
		c, ok := s.Consumers[level]
		if !ok {
			t.Errorf("%s consumer: got no result, want one", level)
			continue
		}
		for name, w := range wantRecs {
			if c.Records[name] != w {
				t.Errorf("%s consumer: got %d records of transaction %s, want %d", level, c.Records[name], name, w)
			}
		}
		wantUnique := wantRecs["a"] + wantRecs["b"] + wantRecs["c"]
		if c.Unique != wantUnique || c.Duplicates != 0 {
			t.Errorf("%s consumer: got %d distinct records and %d duplicates, want %d and 0", level, c.Unique, c.Duplicates, wantUnique)
		}
		if len(c.Bad) > 0 {
			t.Errorf("%s consumer: records whose value does not match the key: got %q, want none", level, c.Bad)
		}
		if len(c.EOF) != partitions {
			t.Errorf("%s consumer: got the end of partitions %v, want all %d", level, c.EOF, partitions)
		}
	}

	// Each partition: its records of the three transactions and one
	// marker (a control batch of one record) per transaction.
	var hw int64
	for p := range partitions {
		hw += s.HighWatermarks[strconv.Itoa(p)]
	}
	if wantHW := int64(3*n + 3*partitions); hw != wantHW {
		t.Errorf("high watermarks: got %d in total (%v), want %d (%d records and 3 markers per partition)", hw, s.HighWatermarks, wantHW, 3*n)
	}
}
