//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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

// TestTxnCoordinatorFailover: three fluxo core processes; a franz-go
// transactional producer commits a transaction and aborts another, then,
// in the middle of a third, the broker coordinating its transactional id
// (FindCoordinator, key type 1) is killed with SIGKILL. The producer goes
// on writing, to a partition not yet in the transaction too, and commits;
// if the commit's outcome is unknown or refused it aborts, as franz-go
// documents, and writes the same records again in a new transaction. Then
// it commits one more transaction and aborts another under the new
// coordinator. The killed broker comes back and the new coordinator is
// killed as EndTxn is sent: that transaction must be all committed or not
// at all. A read_committed consumer reads each committed record exactly
// once and nothing of an aborted transaction; a read_uncommitted one finds
// the aborted records in the log.
func TestTxnCoordinatorFailover(t *testing.T) {
	t.Parallel()
	const (
		topic      = "txn-failover"
		txnID      = "e2e-txn-failover"
		partitions = 3
		perPart    = 20
	)
	procs := startCoreCluster(t, buildFluxo(t), 3)
	var seeds []string
	for _, c := range procs {
		seeds = append(seeds, c.kafka)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopic(ctx, partitions, 3, nil, topic); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(60*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequestRetries(100),
		kgo.RetryTimeout(45*time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// values are the records of one transaction attempt on the given
	// partitions: "<name>/<attempt>/<partition>/<i>". A record's identity
	// is its name, partition and index; the attempt tells a retried
	// transaction's records from the aborted first try.
	values := func(name string, attempt int, parts ...int32) []*kgo.Record {
		var out []*kgo.Record
		for _, p := range parts {
			for i := range perPart {
				out = append(out, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%s/%d/%d/%d", name, attempt, p, i)})
			}
		}
		return out
	}
	send := func(recs []*kgo.Record) error {
		return cl.ProduceSync(ctx, recs...).FirstErr()
	}
	committed := map[string]bool{} // record identity -> committed
	var aborted []string           // values of aborted attempts
	note := func(recs []*kgo.Record, commit bool) {
		for _, r := range recs {
			v := string(r.Value)
			if commit {
				name, rest, _ := strings.Cut(v, "/")
				_, id, _ := strings.Cut(rest, "/")
				committed[name+"/"+id] = true
			} else {
				aborted = append(aborted, v)
			}
		}
	}
	whole := func(name string, commit bool) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("%s: begin: %v", name, err)
		}
		recs := values(name, 1, 0, 1, 2)
		if err := send(recs); err != nil {
			t.Fatalf("%s: produce: %v", name, err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("%s: end (commit %v): %v", name, commit, err)
		}
		note(recs, commit)
	}
	whole("c1", true)
	whole("a1", false)

	coord := txnCoordinator(t, ctx, adm, txnID)
	// The open transaction: partitions 0 and 1 before the kill, partition
	// 2 (new to the transaction: AddPartitionsToTxn goes to the new
	// coordinator) and more of 0 after it.
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("c2: begin: %v", err)
	}
	before := values("c2", 1, 0, 1)
	if err := send(before); err != nil {
		t.Fatalf("c2: produce before the kill: %v", err)
	}
	t.Logf("killing broker %d, the coordinator of %s, mid-transaction", coord, txnID)
	killed := procs[coord-1]
	killed.kill()
	after := values("c2b", 1, 2, 0)
	err = send(after)
	open := append(before, after...)
	if err == nil {
		err = cl.EndTransaction(ctx, kgo.TryCommit)
	}
	if err == nil {
		note(open, true)
	} else {
		// franz-go: on OperationNotAttempted, TransactionAbortable or an
		// unconfirmed commit, retry EndTransaction with TryAbort, then
		// begin anew.
		t.Logf("c2: produce or commit after the kill: %v; aborting and retrying the transaction", err)
		if !errors.Is(err, kerr.OperationNotAttempted) && !errors.Is(err, kerr.TransactionAbortable) {
			t.Logf("c2: %v is not one franz-go names as abortable; trying the abort anyway, as for an unconfirmed commit", err)
		}
		if aerr := cl.AbortBufferedRecords(ctx); aerr != nil {
			t.Fatalf("c2: abort buffered records: %v", aerr)
		}
		if aerr := cl.EndTransaction(ctx, kgo.TryAbort); aerr != nil {
			t.Fatalf("c2: abort after %v: got %v, want the abort to succeed", err, aerr)
		}
		note(open, false)
		if err := cl.BeginTransaction(); err != nil {
			t.Fatalf("c2 retry: begin: %v", err)
		}
		retry := append(values("c2", 2, 0, 1), values("c2b", 2, 2, 0)...)
		if err := send(retry); err != nil {
			t.Fatalf("c2 retry: produce: %v", err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("c2 retry: commit: %v", err)
		}
		note(retry, true)
	}
	if now := txnCoordinator(t, ctx, adm, txnID); now == coord {
		t.Errorf("coordinator of %s after the kill: got broker %d, want another", txnID, now)
	} else {
		t.Logf("coordinator of %s: broker %d, then %d", txnID, coord, now)
	}
	whole("c3", true)
	whole("a2", false)

	// The killed broker comes back; once every replica is in sync, the
	// new coordinator is killed while EndTxn is on its way. The commit
	// then either succeeded, or failed with its outcome possibly unknown:
	// franz-go's TryAbort retry may find it already committed by the next
	// coordinator (a PrepareCommit it replays). Either way the
	// transaction is atomic: all its records or none.
	killed.mustStart(t)
	waitInSync(t, ctx, adm, 3, topic, "__transaction_state")
	coord2 := txnCoordinator(t, ctx, adm, txnID)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("c4: begin: %v", err)
	}
	c4 := values("c4", 1, 0, 1, 2)
	if err := send(c4); err != nil {
		t.Fatalf("c4: produce: %v", err)
	}
	ended := make(chan error, 1)
	go func() { ended <- cl.EndTransaction(ctx, kgo.TryCommit) }()
	t.Logf("killing broker %d, the coordinator of %s, as EndTxn is sent", coord2, txnID)
	killed = procs[coord2-1]
	killed.kill()
	var unsure []string // values all committed or all not
	if err := <-ended; err == nil {
		t.Logf("c4: committed")
		note(c4, true)
	} else {
		t.Logf("c4: commit: %v; aborting", err)
		if aerr := cl.EndTransaction(ctx, kgo.TryAbort); aerr != nil {
			t.Fatalf("c4: abort after %v: got %v, want the abort to succeed", err, aerr)
		}
		for _, r := range c4 {
			unsure = append(unsure, string(r.Value))
		}
	}
	whole("c5", true)

	var alive []string
	for _, c := range procs {
		if c != killed {
			alive = append(alive, c.kafka)
		}
	}
	got := txnRead(t, ctx, alive, topic, true)
	seen := map[string]int{}
	unsureSeen := 0
	for _, v := range got {
		if slices.Contains(aborted, v) {
			t.Errorf("read_committed: got %q of an aborted transaction, want none", v)
			continue
		}
		if slices.Contains(unsure, v) {
			unsureSeen++
			continue
		}
		name, rest, _ := strings.Cut(v, "/")
		_, id, _ := strings.Cut(rest, "/")
		seen[name+"/"+id]++
	}
	for id := range committed {
		if seen[id] != 1 {
			t.Errorf("read_committed: got record %s %d times, want once", id, seen[id])
		}
	}
	for id := range seen {
		if !committed[id] {
			t.Errorf("read_committed: got record %s, which no committed transaction wrote", id)
		}
	}
	if unsureSeen != 0 && unsureSeen != len(unsure) {
		t.Errorf("read_committed: got %d of the %d records of the transaction whose commit was cut short, want all or none", unsureSeen, len(unsure))
	}
	if len(unsure) > 0 {
		t.Logf("the transaction whose commit was cut short: %d of its %d records read (committed by the next coordinator: %v)", unsureSeen, len(unsure), unsureSeen > 0)
	}
	if len(got)-unsureSeen != len(committed) {
		t.Errorf("read_committed: got %d records, want %d", len(got)-unsureSeen, len(committed))
	}

	all := txnRead(t, ctx, alive, topic, false)
	for _, v := range aborted {
		if !slices.Contains(all, v) {
			t.Errorf("read_uncommitted: got no %q, want the aborted record in the log", v)
		}
	}
	t.Logf("%d committed records read once, %d aborted ones skipped, %d records in the log", len(committed), len(aborted), len(all))
}

// waitInSync waits until every partition of the topics has replicas
// in-sync replicas.
func waitInSync(t *testing.T, ctx context.Context, adm *kadm.Client, replicas int, topics ...string) {
	t.Helper()
	var last string
	for ctx.Err() == nil {
		md, err := adm.Metadata(ctx, topics...)
		ok := err == nil
		if err != nil {
			last = err.Error()
		}
		for _, topic := range topics {
			td, found := md.Topics[topic]
			if !found || len(td.Partitions) == 0 {
				ok, last = false, topic+": no partitions"
				continue
			}
			for p, pd := range td.Partitions {
				if len(pd.ISR) != replicas {
					ok, last = false, fmt.Sprintf("%s/%d: in-sync replicas %v", topic, p, pd.ISR)
				}
			}
		}
		if ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("in-sync replicas: got %s, want %d for every partition of %v", last, replicas, topics)
}

// txnCoordinator asks the cluster (FindCoordinator, key type 1) which
// broker coordinates the transactional id, retrying while there is none.
func txnCoordinator(t *testing.T, ctx context.Context, adm *kadm.Client, id string) int32 {
	t.Helper()
	var last error
	for ctx.Err() == nil {
		r := adm.FindTxnCoordinators(ctx, id)[id]
		if r.Err == nil {
			return r.NodeID
		}
		last = r.Err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("coordinator of %s: got %v, want a broker", id, last)
	return -1
}

// txnRead reads topic from the start to its end, the last stable offset
// for read_committed, the high watermark otherwise, and returns the values.
func txnRead(t *testing.T, ctx context.Context, seeds []string, topic string, committed bool) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var ends kadm.ListedOffsets
	if committed {
		ends, err = adm.ListCommittedOffsets(ctx, topic)
	} else {
		ends, err = adm.ListEndOffsets(ctx, topic)
	}
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s (read_committed %v): %v", topic, committed, err)
	}
	var out []string
	pos := map[int32]int64{}
	done := func() bool {
		for _, o := range ends[topic] {
			if pos[o.Partition] < o.Offset {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s (read_committed %v): ends %v, reached %v: %v", topic, committed, ends, pos, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch %s: %v", topic, err) })
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				out = append(out, string(r.Value))
			}
			// Where the read has reached, markers included.
			if committed {
				pos[p.Partition] = max(pos[p.Partition], p.LastStableOffset)
			} else {
				pos[p.Partition] = max(pos[p.Partition], p.HighWatermark)
			}
		})
	}
	return out
}
