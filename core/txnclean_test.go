package core

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/broker"
	"github.com/fluxo-io/fluxo/core/cluster"
	"github.com/fluxo-io/fluxo/core/commitlog"
)

// startCleaningNode starts a node on dir whose cleaner runs often.
func startCleaningNode(t *testing.T, dir string) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Cluster.Timers = cluster.FastTimers()
	cfg.DataDir = dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = ""
	cfg.Broker.CleanInterval = 20 * time.Millisecond
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	return n
}

// cleanNow seals p's active segment and cleans p's log once, as the
// broker's cleaner does (below the last stable offset, without the
// aborted transactions' data), with a cleaner of its own.
func cleanNow(t *testing.T, p *broker.Partition) commitlog.CleanResult {
	t.Helper()
	if err := p.Log().Roll(); err != nil {
		t.Fatal(err)
	}
	c, err := commitlog.NewCleaner(commitlog.DefaultCleanerConfig())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.CleanTxn(ctxT(t), p.Log(), time.Now(), p.CleanerTxns())
	if err != nil {
		t.Fatalf("CleanTxn: %v", err)
	}
	return res
}

// produceKeyed produces key=value pairs to partition 0 of topic, in a
// transaction of cl ended with commit if cl is transactional.
func produceKeyed(t *testing.T, cl *kgo.Client, topic string, txn, commit bool, kvs ...string) {
	t.Helper()
	ctx := ctxT(t)
	if txn {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i+1 < len(kvs); i += 2 {
		r := &kgo.Record{Topic: topic, Partition: 0, Key: []byte(kvs[i]), Value: []byte(kvs[i+1])}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %s=%s: %v", kvs[i], kvs[i+1], err)
		}
	}
	if txn {
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("EndTransaction(commit=%v): %v", commit, err)
		}
	}
}

// readUntil reads partition 0 of topic from the start, read_committed or
// not, up to a record whose value is last, and returns the values read.
// Nothing after last is read; the tests make it the newest record.
func readUntil(t *testing.T, seeds []string, topic string, committed bool, last string) []string {
	t.Helper()
	ctx := ctxT(t)
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl := client1(t, seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}), kgo.FetchIsolationLevel(iso))
	defer cl.Close()
	var out []string
	for len(out) == 0 || out[len(out)-1] != last {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s (committed=%v) up to %q: got %v: %v", topic, committed, last, out, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

// stableAndEnd returns partition 0's last stable offset and high
// watermark as ListOffsets answers them.
func stableAndEnd(t *testing.T, seeds []string, topic string) (int64, int64) {
	t.Helper()
	ctx := ctxT(t)
	adm := kadm.NewClient(client1(t, seeds))
	c, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil || c.Error() != nil {
		t.Fatalf("ListCommittedOffsets: %v %v", err, c.Error())
	}
	e, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || e.Error() != nil {
		t.Fatalf("ListEndOffsets: %v %v", err, e.Error())
	}
	lso, _ := c.Lookup(topic, 0)
	hw, _ := e.Lookup(topic, 0)
	return lso.Offset, hw.Offset
}

// TestTxnCompactedTopic: transactions on a compacted topic, cleaned as
// Kafka's cleaner cleans them. An open transaction holds the cleaner at
// the last stable offset, so its records stay; an aborted transaction's
// records are discarded and do not shadow the committed values of their
// keys; committed transactional records keep the newest value of each
// key, even once some of their transaction's records are compacted away.
// After a restart the partition's transaction state, rebuilt from the
// cleaned log, has no phantom open transaction: the last stable offset
// is the high watermark and read_committed consumers read everything.
// Past delete.retention.ms the markers of transactions with no data left
// go, and so do the aborted ones from the partition's list: the
// producer's later commits stay visible to read_committed, also after a
// restart.
func TestTxnCompactedTopic(t *testing.T) {
	dir := t.TempDir()
	node := startCleaningNode(t, dir)
	seeds := []string{node.KafkaAddr()}
	ctx := ctxT(t)
	adm := kadm.NewClient(client1(t, seeds))
	configs := map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
	}
	if r, err := adm.CreateTopic(ctx, 1, 1, configs, "tc"); err != nil || r.Err != nil {
		t.Fatalf("CreateTopic: %v %v", err, r.Err)
	}
	p, _ := node.Broker().Partition("tc", 0)
	plain := client1(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	txA := txnProducer(t, seeds, "tx-a")
	txB := txnProducer(t, seeds, "tx-b")

	produceKeyed(t, plain, "tc", false, false, "k1", "p1", "k2", "p2", "k3", "p3")
	produceKeyed(t, txA, "tc", true, true, "k2", "t2", "k3", "t3")  // committed; t3 shadowed later
	produceKeyed(t, txA, "tc", true, false, "k1", "a1", "k4", "a4") // aborted
	produceKeyed(t, txA, "tc", true, true, "k5", "d5")              // committed; wholly shadowed later
	if err := p.Log().Roll(); err != nil {
		t.Fatal(err)
	}
	openAt := p.Log().LogEndOffset()
	if err := txB.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txB.ProduceSync(ctx, &kgo.Record{Topic: "tc", Key: []byte("k3"), Value: []byte("open3")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceKeyed(t, plain, "tc", false, false, "k3", "late3", "k5", "p5")
	cleanNow(t, p)
	if got := p.Log().FirstDirtyOffset(); got != openAt {
		t.Fatalf("with a transaction open at %d: got first dirty offset %d, want %d", openAt, got, openAt)
	}
	if lso, _ := stableAndEnd(t, seeds, "tc"); lso != openAt {
		t.Fatalf("last stable offset: got %d, want %d", lso, openAt)
	}
	if got, want := readUntil(t, seeds, "tc", false, "p5"), []string{"p1", "t2", "t3", "d5", "open3", "late3", "p5"}; !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted with a transaction open: got %v, want %v", got, want)
	}

	if err := txB.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	end := p.Log().LogEndOffset()
	cleanNow(t, p)
	if got := p.Log().FirstDirtyOffset(); got != end {
		t.Fatalf("after the commit: got first dirty offset %d, want %d", got, end)
	}
	want := []string{"p1", "t2", "late3", "p5"}
	check := func(when string) {
		t.Helper()
		if lso, hw := stableAndEnd(t, seeds, "tc"); lso != hw {
			t.Fatalf("%s: got last stable offset %d, want the high watermark %d", when, lso, hw)
		}
		for _, committed := range []bool{true, false} {
			if got := readUntil(t, seeds, "tc", committed, want[len(want)-1]); !slices.Equal(got, want) {
				t.Fatalf("%s, read_committed=%v: got %v, want %v", when, committed, got, want)
			}
		}
	}
	check("after cleaning")

	for _, cl := range []*kgo.Client{plain, txA, txB} {
		cl.Close()
	}
	if err := node.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	node = startCleaningNode(t, dir)
	seeds = []string{node.KafkaAddr()}
	check("after a restart")
	// Transactions go on on the cleaned log; k1's committed value
	// survives another aborted one.
	txA = txnProducer(t, seeds, "tx-a")
	produceKeyed(t, txA, "tc", true, false, "k1", "a1-again")
	produceKeyed(t, txA, "tc", true, true, "k6", "c6")
	// Cleaned again, with the transaction state rebuilt at the restart:
	// the new aborted record goes too.
	p, _ = node.Broker().Partition("tc", 0)
	end = p.Log().LogEndOffset()
	testutilEventually(t, "the markers stable", func() bool { return p.CleanerTxns().StableOffset == end })
	cleanNow(t, p)
	want = []string{"p1", "t2", "late3", "p5", "c6"}
	check("after more transactions")

	// Past delete.retention.ms, the markers whose transactions left
	// nothing go (Kafka's rule), and with them the partition's aborted
	// transactions: a client told of one of tx-a's aborted transactions
	// would skip tx-a's records after it until an abort marker that is no
	// longer there (c6 would vanish). The producers' last markers stay.
	if got := len(p.AbortedTxns(0, p.LastStableOffset())); got == 0 {
		t.Fatalf("before delete.retention.ms: got no aborted transaction listed, want tx-a's")
	}
	adm = kadm.NewClient(client1(t, seeds))
	if ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "delete.retention.ms", Value: kadm.StringPtr("0")}}, "tc"); err != nil || ar[0].Err != nil {
		t.Fatalf("AlterTopicConfigs: %v %v", err, ar)
	}
	before := markers(t, p)
	produceKeyed(t, client1(t, seeds, kgo.RecordPartitioner(kgo.ManualPartitioner())), "tc", false, false, "k7", "p7")
	bgRuns := node.Broker().CleanerStats().Runs
	res := cleanNow(t, p)
	// The node's own cleaner may clean the log between cleanNow's roll
	// and its cleaning; then it removed the markers.
	bg := node.Broker().CleanerStats().Runs > bgRuns
	if after := markers(t, p); after >= before || after < 2 || (!bg && (!res.Cleaned || int64(before-after) != res.MarkersRemoved)) {
		t.Fatalf("past delete.retention.ms: got %d markers of %d (%+v, node's cleaner ran: %v), want fewer, and the last of tx-a and tx-b kept", after, before, res, bg)
	}
	if got := p.AbortedTxns(0, p.LastStableOffset()); len(got) != 0 {
		t.Fatalf("past delete.retention.ms: got aborted transactions %v listed, want none (no data left)", got)
	}
	want = append(want, "p7")
	check("past delete.retention.ms")
	if err := node.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	node = startCleaningNode(t, dir)
	seeds = []string{node.KafkaAddr()}
	check("after a restart past delete.retention.ms")
}

// markers counts the control batches in p's log.
func markers(t *testing.T, p *broker.Partition) int {
	t.Helper()
	l := p.Log()
	n := 0
	for off := l.LogStartOffset(); off < l.LogEndOffset(); {
		v, err := l.ReadUncommitted(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Data) == 0 {
			v.Release()
			break
		}
		commitlog.Batches(v.Data, func(b commitlog.Batch, _ []byte) bool {
			if b.IsControl() {
				n++
			}
			return true
		})
		off = v.Next
		v.Release()
	}
	return n
}

// txnOffsetCommit commits group's offsets of topic src (partition →
// offset) in one transaction of producer (pid, epoch) with id txid, ended
// with commit, by direct requests.
func txnOffsetCommit(t *testing.T, cl *kgo.Client, txid string, pid int64, epoch int16, group string, offsets map[int32]int64, commit bool) {
	t.Helper()
	ctx := ctxT(t)
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txid, pid, epoch, group
	if ar, err := add.RequestWith(ctx, cl); err != nil || ar.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v %+v", err, ar)
	}
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = txid, group, pid, epoch
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = "src"
	for part, off := range offsets {
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = part, off
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("TxnOffsetCommit: %v", err)
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("TxnOffsetCommit partition %d: %v", p.Partition, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = txid, pid, epoch, commit
	if er, err := end.RequestWith(ctx, cl); err != nil || er.ErrorCode != 0 {
		t.Fatalf("EndTxn(commit=%v): %v %+v", commit, err, er)
	}
}

// TestTxnOffsetsCompacted: __consumer_offsets holding transactional
// offset commits and their markers, cleaned: a committed transactional
// offset is kept, an aborted one neither shadows the offset committed
// before it nor comes back, and a restart on the cleaned log replays the
// same offsets.
func TestTxnOffsetsCompacted(t *testing.T) {
	dir := t.TempDir()
	node := startCleaningNode(t, dir)
	seeds := []string{node.KafkaAddr()}
	createTopic(t, seeds, "src", 3, 1)
	ctx := ctxT(t)
	cl := client1(t, seeds)
	adm := kadm.NewClient(cl)
	commitPlain := func(part int32, at int64) {
		t.Helper()
		var o kadm.Offsets
		o.AddOffset("src", part, at, -1)
		r, err := adm.CommitOffsets(ctx, "g", o)
		if err == nil {
			err = r.Error()
		}
		if err != nil {
			t.Fatalf("commit %d: %v", at, err)
		}
	}
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID = kmsg.StringPtr("tx-o")
	init.TransactionTimeoutMillis = 60000
	ir, err := init.RequestWith(ctx, cl)
	if err != nil || ir.ErrorCode != 0 {
		t.Fatalf("InitProducerID: %v %v", err, kerr.ErrorForCode(ir.ErrorCode))
	}
	txn := func(offsets map[int32]int64, commit bool) {
		t.Helper()
		txnOffsetCommit(t, cl, "tx-o", ir.ProducerID, ir.ProducerEpoch, "g", offsets, commit)
	}
	commitPlain(0, 10) // creates __consumer_offsets
	if ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Name: "min.cleanable.dirty.ratio", Value: kadm.StringPtr("0.01")},
	}, broker.OffsetsTopic); err != nil || ar[0].Err != nil {
		t.Fatalf("AlterTopicConfigs: %v %v", err, ar)
	}
	txn(map[int32]int64{0: 20}, true)         // src/0: 20
	txn(map[int32]int64{0: 30, 1: 31}, false) // aborted: src/0 stays 20, src/1 none
	txn(map[int32]int64{2: 40}, true)
	commitPlain(2, 45) // src/2: 45, shadowing the transactional 40
	want := map[int32]int64{0: 20, 1: -1, 2: 45}

	check := func(when string) {
		t.Helper()
		adm := kadm.NewClient(client1(t, seeds))
		testutilEventually(t, when, func() bool {
			f, err := adm.FetchOffsets(ctx, "g")
			if err != nil {
				return false
			}
			for part, w := range want {
				o, ok := f.Lookup("src", part)
				got := int64(-1)
				if ok && o.Err == nil {
					got = o.At
				}
				if got != w {
					t.Logf("%s: src/%d: got offset %d, want %d", when, part, got, w)
					return false
				}
			}
			return true
		})
	}
	check("before cleaning")

	var p *broker.Partition
	for i := int32(0); ; i++ {
		q, ok := node.Broker().Partition(broker.OffsetsTopic, i)
		if !ok {
			break
		}
		if q.Log().LogEndOffset() > 0 {
			p = q
		}
	}
	if p == nil {
		t.Fatal("no offsets partition holds the commits")
	}
	end := p.Log().LogEndOffset()
	testutilEventually(t, "the markers stable", func() bool { return p.CleanerTxns().StableOffset == end })
	res := cleanNow(t, p)
	if got := p.Log().FirstDirtyOffset(); got != end {
		t.Fatalf("first dirty offset: got %d, want %d (%+v)", got, end, res)
	}
	t.Logf("offsets partition cleaned: %+v", res)
	check("after cleaning")

	cl.Close()
	if err := node.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	node = startCleaningNode(t, dir)
	seeds = []string{node.KafkaAddr()}
	check("after a restart on the cleaned log")
}

// __transaction_state is compacted, as Kafka's, so that an expired
// transactional id's tombstone removes its state: created so, and a topic
// made by an older version without it is switched at the next
// FindCoordinator.
func TestTxnTopicCompacted(t *testing.T) {
	for _, existing := range []bool{false, true} {
		t.Run(fmt.Sprintf("existing %v", existing), func(t *testing.T) {
			node := startCleaningNode(t, t.TempDir())
			seeds := []string{node.KafkaAddr()}
			ctx := ctxT(t)
			if existing {
				if _, err := node.Broker().CreateTopic(ctx, broker.TxnTopic, 12, 0, map[string]string{"retention.ms": "-1", "flush.messages": "1"}); err != nil {
					t.Fatal(err)
				}
			}
			adm := kadm.NewClient(client1(t, seeds))
			if r, err := adm.CreateTopic(ctx, 1, 1, nil, "tt"); err != nil || r.Err != nil {
				t.Fatalf("CreateTopic: %v %v", err, r.Err)
			}
			produceKeyed(t, txnProducer(t, seeds, "tx-compact"), "tt", true, true, "k", "v")
			cfgs := node.Broker().State().Topics[broker.TxnTopic].Configs
			if cfgs["cleanup.policy"] != "compact" || cfgs["retention.ms"] != "-1" || cfgs["flush.messages"] != "1" {
				t.Fatalf("got %s configs %v, want compacted, no time retention, fsync per write", broker.TxnTopic, cfgs)
			}
		})
	}
}
