package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

// txnProducer is a transactional franz-go client of node.
func txnProducer(t *testing.T, seeds []string, id string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(30 * time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produceTxn produces values to topic partition p in one transaction and
// ends it with commit or abort.
func produceTxn(t *testing.T, cl *kgo.Client, topic string, p int32, commit bool, values ...string) {
	t.Helper()
	ctx := ctxT(t)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("BeginTransaction: %v", err)
	}
	for _, v := range values {
		r := &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("EndTransaction(commit=%v): %v", commit, err)
	}
}

// readValues reads topic from the start with the given isolation until
// the partitions' ends (as ListOffsets at that isolation gives them) and
// returns the values read.
func readValues(t *testing.T, seeds []string, topic string, committed bool) []string {
	t.Helper()
	ctx := ctxT(t)
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	adm := kadm.NewClient(client1(t, seeds))
	var ends kadm.ListedOffsets
	var err error
	if committed {
		ends, err = adm.ListCommittedOffsets(ctx, topic)
	} else {
		ends, err = adm.ListEndOffsets(ctx, topic)
	}
	if err != nil || ends.Error() != nil {
		t.Fatalf("list end offsets: %v %v", err, ends.Error())
	}
	cl := client1(t, seeds, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso))
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
			t.Fatalf("read %s (committed=%v): ends %v, at %v: %v", topic, committed, ends, pos, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				out = append(out, string(r.Value))
			}
			// The high watermark (uncommitted) or last stable offset
			// (committed) the broker sent: where this partition's read
			// has reached, markers included.
			if committed {
				pos[p.Partition] = max(pos[p.Partition], p.LastStableOffset)
			} else {
				pos[p.Partition] = max(pos[p.Partition], p.HighWatermark)
			}
		})
	}
	return out
}

func client1(t *testing.T, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func createTopic(t *testing.T, seeds []string, topic string, partitions int32, rf int16) {
	t.Helper()
	adm := kadm.NewClient(client1(t, seeds))
	resp, err := adm.CreateTopic(ctxT(t), partitions, rf, nil, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic %s: %v %v", topic, err, resp.Err)
	}
}

func TestTxnCommitAbortIsolation(t *testing.T) {
	dir := t.TempDir()
	node := startNode(t, dir)
	seeds := []string{node.KafkaAddr()}
	createTopic(t, seeds, "txn", 1, 1)
	cl := txnProducer(t, seeds, "tx-1")
	produceTxn(t, cl, "txn", 0, true, "c1", "c2")
	produceTxn(t, cl, "txn", 0, false, "a1", "a2")
	produceTxn(t, cl, "txn", 0, true, "c3")

	got := readValues(t, seeds, "txn", true)
	if want := []string{"c1", "c2", "c3"}; !slices.Equal(got, want) {
		t.Errorf("read_committed: got %v, want %v", got, want)
	}
	got = readValues(t, seeds, "txn", false)
	if want := []string{"c1", "c2", "a1", "a2", "c3"}; !slices.Equal(got, want) {
		t.Errorf("read_uncommitted: got %v, want %v", got, want)
	}

	// The partition rebuilds its aborted transactions from the log when
	// it opens again.
	cl.Close()
	node.Shutdown(ctxT(t))
	node = startNode(t, dir)
	seeds = []string{node.KafkaAddr()}
	var after []string
	testutilEventually(t, "the topic served again", func() bool {
		_, err := kadm.NewClient(client1(t, seeds)).ListEndOffsets(ctxT(t), "txn")
		return err == nil
	})
	after = readValues(t, seeds, "txn", true)
	if want := []string{"c1", "c2", "c3"}; !slices.Equal(after, want) {
		t.Errorf("read_committed after a restart: got %v, want %v", after, want)
	}
}

// An open transaction holds read_committed readers back at its first
// offset, while read_uncommitted ones read past it.
func TestTxnOpenHoldsLastStableOffset(t *testing.T) {
	node := startNode(t, t.TempDir())
	seeds := []string{node.KafkaAddr()}
	createTopic(t, seeds, "lso", 1, 1)
	cl := txnProducer(t, seeds, "tx-open")
	produceTxn(t, cl, "lso", 0, true, "c1")
	ctx := ctxT(t)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "lso", Partition: 0, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(client1(t, seeds))
	committed, err := adm.ListCommittedOffsets(ctx, "lso")
	if err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(ctx, "lso")
	if err != nil {
		t.Fatal(err)
	}
	lso, _ := committed.Lookup("lso", 0)
	hw, _ := end.Lookup("lso", 0)
	// c1 at 0, its commit marker at 1, "open" at 2.
	if lso.Offset != 2 || hw.Offset != 3 {
		t.Errorf("with a transaction open at 2: got last stable offset %d and high watermark %d, want 2 and 3", lso.Offset, hw.Offset)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	committed, err = adm.ListCommittedOffsets(ctx, "lso")
	if err != nil {
		t.Fatal(err)
	}
	if lso, _ := committed.Lookup("lso", 0); lso.Offset != 4 {
		t.Errorf("after the commit: got last stable offset %d, want 4", lso.Offset)
	}
	if got, want := readValues(t, seeds, "lso", true), []string{"c1", "open"}; !slices.Equal(got, want) {
		t.Errorf("read_committed: got %v, want %v", got, want)
	}
}

// A second producer with the same transactional id fences the first: the
// first one's transaction is aborted, and its next requests fail.
func TestTxnZombieFenced(t *testing.T) {
	node := startNode(t, t.TempDir())
	seeds := []string{node.KafkaAddr()}
	createTopic(t, seeds, "zombie", 1, 1)
	ctx := ctxT(t)
	old := txnProducer(t, seeds, "tx-z")
	if err := old.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := old.ProduceSync(ctx, &kgo.Record{Topic: "zombie", Partition: 0, Value: []byte("zombie-1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The new instance: its InitProducerID aborts the open transaction
	// and bumps the epoch.
	cur := txnProducer(t, seeds, "tx-z")
	produceTxn(t, cur, "zombie", 0, true, "new-1")

	err := old.ProduceSync(ctx, &kgo.Record{Topic: "zombie", Partition: 0, Value: []byte("zombie-2")}).FirstErr()
	if err == nil {
		err = old.EndTransaction(ctx, kgo.TryCommit)
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Errorf("zombie: got %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	if got, want := readValues(t, seeds, "zombie", true), []string{"new-1"}; !slices.Equal(got, want) {
		t.Errorf("read_committed: got %v, want %v", got, want)
	}
}

// A transaction left open past its timeout is aborted by the coordinator,
// and its producer is fenced.
func TestTxnTimeoutAborts(t *testing.T) {
	node := startNodeWith(t, func(cfg *Config) { cfg.Txn.AbortCheckInterval = 50 * time.Millisecond })
	seeds := []string{node.KafkaAddr()}
	createTopic(t, seeds, "slow", 1, 1)
	ctx := ctxT(t)
	cl := txnProducer(t, seeds, "tx-slow", kgo.TransactionTimeout(time.Second))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "slow", Partition: 0, Value: []byte("late")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(client1(t, seeds))
	for {
		d, err := adm.DescribeTransactions(ctx, "tx-slow")
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := d["tx-slow"]; ok && s.State == "CompleteAbort" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("transaction never aborted: %v", d)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Errorf("commit after the timeout: got success, want an error")
	}
	// A record after the aborted ones, so that the reader has something
	// to stop at.
	if err := client1(t, seeds).ProduceSync(ctx, &kgo.Record{Topic: "slow", Partition: 0, Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got, want := readValues(t, seeds, "slow", true), []string{"after"}; !slices.Equal(got, want) {
		t.Errorf("read_committed: got %v, want %v", got, want)
	}
}

// DescribeTransactions and ListTransactions show a transaction's state.
func TestTxnDescribeAndList(t *testing.T) {
	node := startNode(t, t.TempDir())
	seeds := []string{node.KafkaAddr()}
	createTopic(t, seeds, "desc", 2, 1)
	ctx := ctxT(t)
	cl := txnProducer(t, seeds, "tx-d")
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "desc", Partition: p, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(client1(t, seeds))
	vs, err := adm.ApiVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		for _, key := range []int16{22, 24, 25, 26, 27, 28, 65, 66} {
			if _, _, ok := v.KeyVersions(key); !ok {
				t.Errorf("ApiVersions of node %d: got no key %d, want it advertised", v.NodeID, key)
			}
		}
	}
	d, err := adm.DescribeTransactions(ctx, "tx-d")
	if err != nil {
		t.Fatal(err)
	}
	s, ok := d["tx-d"]
	if !ok || s.Err != nil || s.State != "Ongoing" || len(s.Topics["desc"]) != 2 {
		t.Errorf("describe: got %+v, want Ongoing on desc 0 and 1", s)
	}
	l, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil {
		t.Fatal(err)
	}
	if ids := l.TransactionalIDs(); !slices.Equal(ids, []string{"tx-d"}) {
		t.Errorf("list Ongoing: got %v, want [tx-d]", ids)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	d, err = adm.DescribeTransactions(ctx, "tx-d")
	if err != nil {
		t.Fatal(err)
	}
	if s := d["tx-d"]; s.State != "CompleteAbort" {
		t.Errorf("describe after abort: got %s, want CompleteAbort", s.State)
	}
}

// etlSession is one run of a consume-transform-produce loop: it reads
// "in" in group etl with read_committed and writes each value to "out" in
// the same transaction as its offsets.
func etlSession(t *testing.T, seeds []string, opts ...kgo.Opt) *kgo.GroupTransactSession {
	t.Helper()
	s, err := kgo.NewGroupTransactSession(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.TransactionalID("etl"),
		kgo.TransactionTimeout(30 * time.Second),
		kgo.ConsumerGroup("etl"),
		kgo.ConsumeTopics("in"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Small fetches: many transactions, so that the stop falls
		// mid-run.
		kgo.FetchMaxBytes(1000),
		kgo.FetchMaxPartitionBytes(300),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// runETL polls and copies until stop says so after a committed
// transaction, or, with abandon, leaves the last transaction open and
// closes the session, as a loop stopped mid-run.
// It returns how many records it committed.
func runETL(t *testing.T, s *kgo.GroupTransactSession, stop func(committed int) bool, abandon bool) int {
	t.Helper()
	ctx := ctxT(t)
	committed := 0
	for {
		fs := s.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("etl: %v after %d committed", ctx.Err(), committed)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("etl fetch: %v", err) })
		if err := s.Begin(); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			s.Produce(ctx, &kgo.Record{Topic: "out", Key: r.Key, Value: r.Value}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Logf("etl produce: %v", err)
				}
			})
		})
		if abandon && committed > 0 && n > 0 && stop(committed) {
			// The transaction's records reach the log, then the loop
			// stops without ending it: the next session's
			// InitProducerID aborts it.
			if err := s.Client().Flush(ctx); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			s.Close()
			return committed
		}
		ok, err := s.End(ctx, kgo.TryCommit)
		if err != nil {
			t.Logf("etl End: %v", err)
		}
		if ok {
			committed += n
		}
		if !abandon && stop(committed) {
			return committed
		}
	}
}

// A consume-transform-produce loop with GroupTransactSession, stopped
// mid-transaction and restarted: a read_committed reader of its output
// sees every input record exactly once.
func TestTxnGroupTransactSessionExactlyOnce(t *testing.T) {
	node := startNode(t, t.TempDir())
	seeds := []string{node.KafkaAddr()}
	createTopic(t, seeds, "in", 3, 1)
	createTopic(t, seeds, "out", 3, 1)
	const n = 600
	in := client1(t, seeds)
	ctx := ctxT(t)
	for i := 0; i < n; i += 6 {
		var recs []*kgo.Record
		for j := i; j < i+6; j++ {
			recs = append(recs, &kgo.Record{Topic: "in", Key: []byte(strconv.Itoa(j % 7)), Value: []byte(strconv.Itoa(j))})
		}
		if err := in.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	first := runETL(t, etlSession(t, seeds), func(c int) bool { return c >= n/4 }, true)
	t.Logf("first run committed %d records", first)
	runETL(t, etlSession(t, seeds), func(c int) bool { return first+c >= n }, false)

	got := readValues(t, seeds, "out", true)
	seen := map[string]int{}
	for _, v := range got {
		seen[v]++
	}
	var dup, missing []string
	for i := 0; i < n; i++ {
		switch seen[strconv.Itoa(i)] {
		case 1:
		case 0:
			missing = append(missing, strconv.Itoa(i))
		default:
			dup = append(dup, strconv.Itoa(i))
		}
	}
	if len(got) != n || len(dup) > 0 || len(missing) > 0 {
		t.Errorf("read_committed output: got %d records (duplicates %v, missing %v), want %d, each once", len(got), dup, missing, n)
	}
	// The stopped run's open transaction left records in the log.
	if raw := readValues(t, seeds, "out", false); len(raw) <= n {
		t.Errorf("read_uncommitted: got %d records, want more than %d (an aborted transaction's)", len(raw), n)
	}
}

// TestClusterTxnCoordinatorFailover: the transaction coordinator of an id
// crashes while its transaction is open; the new leader of its
// __transaction_state partition reloads it, the producer commits through
// it, and a read_committed reader sees each committed record once and no
// aborted one.
func TestClusterTxnCoordinatorFailover(t *testing.T) {
	t.Parallel() // waits on failure detection: overlap it with the other cluster tests
	tc := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	adm := kadm.NewClient(tc.client())
	if _, err := adm.CreateTopic(ctx, 3, 3, nil, "pay"); err != nil {
		t.Fatal(err)
	}
	tc.waitState("the topic on every node", func(st *cluster.State) bool { return st.Topics["pay"] != nil })
	seeds := tc.seeds()
	cl := txnProducer(t, seeds, "tx-f", kgo.RequestRetries(100), kgo.RetryTimeout(60*time.Second))
	var want []string
	batch := func(prefix string) []string {
		var out []string
		for p := int32(0); p < 3; p++ {
			for i := range 3 {
				out = append(out, fmt.Sprintf("%s-%d-%d", prefix, p, i))
			}
		}
		return out
	}
	send := func(vals []string) {
		t.Helper()
		for i, v := range vals {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "pay", Partition: int32(i / 3), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
		}
	}
	produceTxnValues := func(prefix string, commit bool) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		vals := batch(prefix)
		send(vals)
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end %s: %v", prefix, err)
		}
		if commit {
			want = append(want, vals...)
		}
	}
	produceTxnValues("c1", true)
	produceTxnValues("a1", false)

	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	open := batch("c2")
	send(open)
	found := adm.FindTxnCoordinators(ctx, "tx-f")
	if found["tx-f"].Err != nil {
		t.Fatalf("find coordinator: %v", found["tx-f"].Err)
	}
	coord := found["tx-f"].NodeID
	t.Logf("crashing node %d, the coordinator of tx-f", coord)
	tc.crash(int(coord - 1))
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit after the coordinator crashed: %v", err)
	}
	want = append(want, open...)
	produceTxnValues("c3", true)

	got := readValues(t, tc.seeds(), "pay", true)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("read_committed: got %v, want %v", got, want)
	}
}

// Transactional offset commits are in __consumer_offsets before
// TxnOffsetCommit answers: a broker restarted before the transaction ends
// still has them pending, commits them when it ends, and finds them
// committed after another restart.
func TestTxnOffsetsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	node := startNode(t, dir)
	seeds := []string{node.KafkaAddr()}
	createTopic(t, seeds, "src", 1, 1)
	ctx := ctxT(t)
	cl := client1(t, seeds)

	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID = kmsg.StringPtr("tx-r")
	init.TransactionTimeoutMillis = 60000
	ir, err := init.RequestWith(ctx, cl)
	if err != nil || ir.ErrorCode != 0 {
		t.Fatalf("InitProducerID: %v %v", err, kerr.ErrorForCode(ir.ErrorCode))
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = "tx-r", ir.ProducerID, ir.ProducerEpoch, "g-r"
	if ar, err := add.RequestWith(ctx, cl); err != nil || ar.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v %v", err, ar)
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = "tx-r", "g-r", ir.ProducerID, ir.ProducerEpoch
	ct := kmsg.NewTxnOffsetCommitRequestTopic()
	ct.Topic = "src"
	cp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset = 0, 5
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	cr, err := commit.RequestWith(ctx, cl)
	if err != nil || cr.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("TxnOffsetCommit: %v %+v", err, cr)
	}

	fetch := func(cl *kgo.Client, stable bool) (int64, int16) {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = "g-r"
		req.RequireStable = stable
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = "src", []int32{0}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("OffsetFetch: %v", err)
		}
		if len(resp.Groups) > 0 { // v8+
			g := resp.Groups[0]
			if g.ErrorCode != 0 {
				return -1, g.ErrorCode
			}
			p := g.Topics[0].Partitions[0]
			return p.Offset, p.ErrorCode
		}
		p := resp.Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
	if off, code := fetch(cl, true); code != kerr.UnstableOffsetCommit.Code {
		t.Errorf("before the end, stable fetch: got offset %d code %d, want UNSTABLE_OFFSET_COMMIT", off, code)
	}
	if off, code := fetch(cl, false); off != -1 || code != 0 {
		t.Errorf("before the end: got offset %d code %d, want -1 (nothing committed)", off, code)
	}

	cl.Close()
	node.Shutdown(ctx)
	node = startNode(t, dir)
	cl = client1(t, []string{node.KafkaAddr()})
	var code int16
	testutilEventually(t, "the offset still pending after a restart", func() bool {
		_, code = fetch(cl, true)
		return code == kerr.UnstableOffsetCommit.Code
	})
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = "tx-r", ir.ProducerID, ir.ProducerEpoch, true
	if er, err := end.RequestWith(ctx, cl); err != nil || er.ErrorCode != 0 {
		t.Fatalf("EndTxn: %v %+v", err, er)
	}
	if off, code := fetch(cl, true); off != 5 || code != 0 {
		t.Errorf("after the commit: got offset %d code %d, want 5", off, code)
	}

	cl.Close()
	node.Shutdown(ctx)
	node = startNode(t, dir)
	cl = client1(t, []string{node.KafkaAddr()})
	testutilEventually(t, "the committed offset after another restart", func() bool {
		off, code := fetch(cl, true)
		return off == 5 && code == 0
	})
}

// testutilEventually waits up to 30 s for ok.
func testutilEventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	testutil.EventuallyWithin(t, 30*time.Second, what, ok)
}

// Transactions under authorization: WRITE on the transactional id is
// needed to produce in a transaction, DESCRIBE on it to see it; with both
// and WRITE on the topic, a transaction commits.
func TestAuthzTransactionalID(t *testing.T) {
	a := startAuthzNode(t)
	a.createTopics(t, "secret")
	txid := func(op kmsg.ACLOperation) acl.Binding {
		return binding(kmsg.ACLResourceTypeTransactionalId, "tx-a", kmsg.ACLResourcePatternTypeLiteral, alice, op, kmsg.ACLPermissionTypeAllow)
	}
	ctx := ctxT(t)

	// Without WRITE on the id: InitProducerID is refused.
	a.set(allowTopic("secret", alice, kmsg.ACLOperationWrite), txid(kmsg.ACLOperationDescribe))
	cl := a.client(t, alice, kgo.TransactionalID("tx-a"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	err := cl.BeginTransaction()
	if err == nil {
		err = cl.ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("v")}).FirstErr()
	}
	if !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Errorf("without WRITE on the id: got %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err)
	}

	// Without DESCRIBE on it: FindCoordinator is refused, and so is
	// DescribeTransactions.
	a.set(allowTopic("secret", alice, kmsg.ACLOperationWrite))
	d, err := kadm.NewClient(a.client(t, alice)).DescribeTransactions(ctx, "tx-a")
	if got := d["tx-a"].Err; !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) && !errors.Is(got, kerr.TransactionalIDAuthorizationFailed) {
		t.Errorf("describe without DESCRIBE: got %v / %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err, got)
	}

	// With both, a transaction commits.
	a.set(allowTopic("secret", alice, kmsg.ACLOperationWrite), txid(kmsg.ACLOperationWrite), txid(kmsg.ACLOperationDescribe))
	ok := a.client(t, alice, kgo.TransactionalID("tx-a"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTxn(t, ok, "secret", 0, true, "v1")
}

// TestClusterTxnExactlyOnceCoordinatorCrash: a consume-transform-produce
// loop runs in a three-broker cluster with every topic replicated three
// times; the broker coordinating its group crashes mid-run. The loop goes
// on (its failed transactions abort and are redone), and a read_committed
// reader of the output sees every input record once.
func TestClusterTxnExactlyOnceCoordinatorCrash(t *testing.T) {
	t.Parallel() // waits on failure detection: overlap it with the other cluster tests
	tc := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	adm := kadm.NewClient(tc.client())
	for _, topic := range []string{"in", "out"} {
		if _, err := adm.CreateTopic(ctx, 3, 3, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	tc.waitState("the topics on every node", func(st *cluster.State) bool { return st.Topics["in"] != nil && st.Topics["out"] != nil })
	const n = 300
	in := tc.client()
	for i := 0; i < n; i += 6 {
		var recs []*kgo.Record
		for j := i; j < i+6; j++ {
			recs = append(recs, &kgo.Record{Topic: "in", Key: []byte(strconv.Itoa(j % 7)), Value: []byte(strconv.Itoa(j))})
		}
		if err := in.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	s := etlSession(t, tc.seeds(), kgo.RequestRetries(100), kgo.RetryTimeout(60*time.Second))
	committed := 0
	crashed := false
	for committed < n {
		fs := s.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("etl: %v after %d committed", ctx.Err(), committed)
		}
		if err := s.Begin(); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		k := 0
		fs.EachRecord(func(r *kgo.Record) {
			k++
			s.Produce(ctx, &kgo.Record{Topic: "out", Key: r.Key, Value: r.Value}, nil)
		})
		if !crashed && committed >= n/3 && k > 0 {
			found := adm.FindGroupCoordinators(ctx, "etl")["etl"]
			if found.Err != nil {
				t.Fatal(found.Err)
			}
			t.Logf("crashing node %d, the coordinator of group etl, after %d committed", found.NodeID, committed)
			tc.crash(int(found.NodeID - 1))
			crashed = true
		}
		ok, err := s.End(ctx, kgo.TryCommit)
		if err != nil {
			t.Logf("etl End: %v", err)
		}
		if ok {
			committed += k
		}
	}
	got := readValues(t, tc.seeds(), "out", true)
	seen := map[string]int{}
	for _, v := range got {
		seen[v]++
	}
	var dup, missing []string
	for i := 0; i < n; i++ {
		switch seen[strconv.Itoa(i)] {
		case 1:
		case 0:
			missing = append(missing, strconv.Itoa(i))
		default:
			dup = append(dup, strconv.Itoa(i))
		}
	}
	if len(got) != n || len(dup) > 0 || len(missing) > 0 {
		t.Errorf("read_committed output: got %d records (duplicates %v, missing %v), want %d, each once", len(got), dup, missing, n)
	}
}
