//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The clients under test: Debian's kcat and python3-confluent-kafka, both on
// librdkafka. python3 is called by its full path, so that a python3 earlier
// on PATH (a virtualenv, pyenv) without confluent_kafka is not picked.
const (
	kcatBin = "kcat"
	python  = "/usr/bin/python3"
)

// TestKafkaClients runs unmodified third-party Kafka clients against one
// fluxo core process on 127.0.0.1: kcat for metadata and for a produce and
// consume round trip with and without snappy, and confluent-kafka-python for
// an idempotent producer and a cooperative-sticky consumer group.
func TestKafkaClients(t *testing.T) {
	t.Parallel()
	needKcat(t)
	needConfluentKafka(t)
	core := startCore(t, buildFluxo(t))

	t.Run("kcat metadata", func(t *testing.T) { testKcatMetadata(t, core) })
	for _, codec := range []string{"snappy", "none"} {
		t.Run("kcat produce consume "+codec, func(t *testing.T) { testKcatRoundTrip(t, core, codec) })
	}
	t.Run("confluent-kafka consumer group", func(t *testing.T) { testConfluentGroup(t, core) })
}

// kcatMetadata is the part of kcat -L -J's output the tests read.
type kcatMetadata struct {
	Brokers []struct {
		ID   int32  `json:"id"`
		Name string `json:"name"`
	} `json:"brokers"`
	Topics []kcatTopic `json:"topics"`
}

type kcatTopic struct {
	Topic      string          `json:"topic"`
	Error      string          `json:"error"`
	Partitions []kcatPartition `json:"partitions"`
}

type kcatPartition struct {
	Partition int32    `json:"partition"`
	Leader    int32    `json:"leader"`
	Error     string   `json:"error"`
	Replicas  []kcatID `json:"replicas"`
	ISRs      []kcatID `json:"isrs"`
}

type kcatID struct {
	ID int32 `json:"id"`
}

// testKcatMetadata lists the cluster with kcat -L before and after creating
// a topic of 3 partitions with fluxo topic create.
func testKcatMetadata(t *testing.T, core *coreProcess) {
	const topic = "kcat-metadata"
	md := kcatList(t, core.kafka)
	if len(md.Brokers) != 1 || md.Brokers[0].ID != 0 || md.Brokers[0].Name != core.kafka {
		t.Fatalf("kcat -L brokers: got %+v, want one broker, id 0, at %s", md.Brokers, core.kafka)
	}
	for _, tp := range md.Topics {
		if tp.Topic == topic {
			t.Fatalf("kcat -L before create: got topic %q listed, want it absent", topic)
		}
	}

	run(t, 30*time.Second, nil, core.bin, "topic", "create", "--brokers", core.kafka, topic, "--partitions", "3")

	md = kcatList(t, core.kafka)
	i := slices.IndexFunc(md.Topics, func(tp kcatTopic) bool { return tp.Topic == topic })
	if i < 0 {
		t.Fatalf("kcat -L after create: got topics %v, want %q among them", topicNames(md), topic)
	}
	tp := md.Topics[i]
	if tp.Error != "" {
		t.Fatalf("kcat -L topic %q: got error %q, want none", topic, tp.Error)
	}
	var got []int32
	for _, p := range tp.Partitions {
		got = append(got, p.Partition)
		if p.Error != "" || p.Leader != 0 || len(p.Replicas) != 1 || p.Replicas[0].ID != 0 || len(p.ISRs) != 1 || p.ISRs[0].ID != 0 {
			t.Errorf("kcat -L %s/%d: got leader %d, replicas %v, isrs %v, error %q; want leader 0, replicas [0], isrs [0], no error",
				topic, p.Partition, p.Leader, p.Replicas, p.ISRs, p.Error)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []int32{0, 1, 2}) {
		t.Errorf("kcat -L %s partitions: got %v, want [0 1 2]", topic, got)
	}

	// kcat -L -t asks for the one topic (Metadata with a topic list).
	md = kcatList(t, core.kafka, "-t", topic)
	if len(md.Topics) != 1 || md.Topics[0].Topic != topic || len(md.Topics[0].Partitions) != 3 {
		t.Errorf("kcat -L -t %s: got %+v, want the topic with 3 partitions", topic, md.Topics)
	}
}

func topicNames(md kcatMetadata) []string {
	var names []string
	for _, tp := range md.Topics {
		names = append(names, tp.Topic)
	}
	return names
}

func kcatList(t *testing.T, addr string, args ...string) kcatMetadata {
	t.Helper()
	out := run(t, 20*time.Second, nil, kcatBin, append([]string{"-b", addr, "-L", "-J"}, args...)...)
	var md kcatMetadata
	if err := json.Unmarshal(bytes.TrimSpace(out), &md); err != nil {
		t.Fatalf("kcat -L -J: cannot parse the output: %v\n%s", err, out)
	}
	return md
}

// testKcatRoundTrip produces 10,000 keyed records with kcat -P (with the
// given compression codec) to an auto-created topic of one partition,
// checks the codec of the stored batches (a broker keeps them as the client
// sent them), and consumes them back with kcat -C: the same lines in the
// same order.
func testKcatRoundTrip(t *testing.T, core *coreProcess, codec string) {
	const n = 10000
	topic := "kcat-" + codec
	var in bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, "key-%d:value-%d\n", i, i)
	}
	want := in.Bytes()

	run(t, 30*time.Second, bytes.NewReader(want), kcatBin, "-P", "-b", core.kafka, "-t", topic, "-K:", "-z", codec)

	// librdkafka sends a batch uncompressed when the codec would not make
	// it smaller (a batch of one record), so with snappy most records, not
	// all, are in snappy batches.
	recs := recordsByCodec(t, filepath.Join(core.dataDir, topic+"-0"))
	t.Logf("stored records by codec: %v", recs)
	total := 0
	for _, r := range recs {
		total += r
	}
	if total != n {
		t.Errorf("stored records of %s: got %d, want %d", topic, total, n)
	}
	switch codec {
	case "snappy":
		if recs[codecSnappy]*2 < total || recs[codecSnappy]+recs[codecNone] != total {
			t.Errorf("stored records of %s by codec: got %v, want most with codec %d (snappy), the rest %d (none); "+
				"librdkafka does not compress when it thinks the broker lacks the codec (kcat -d feature,msg tells)",
				topic, recs, codecSnappy, codecNone)
		}
	case "none":
		if recs[codecNone] != total {
			t.Errorf("stored records of %s by codec: got %v, want all with codec %d (none)", topic, recs, codecNone)
		}
	}

	got := run(t, 30*time.Second, nil, kcatBin, "-C", "-b", core.kafka, "-t", topic, "-o", "beginning", "-e", "-f", `%k:%s\n`)
	if bytes.Equal(got, want) {
		return
	}
	gotLines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	wantLines := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
	if len(gotLines) != len(wantLines) {
		t.Errorf("kcat -C %s: got %d records, want %d", topic, len(gotLines), len(wantLines))
	}
	for i := range min(len(gotLines), len(wantLines)) {
		if gotLines[i] != wantLines[i] {
			t.Fatalf("kcat -C %s: record %d: got %q, want %q", topic, i, gotLines[i], wantLines[i])
		}
	}
	if len(gotLines) == len(wantLines) {
		t.Errorf("kcat -C %s: got %d bytes, want %d (the same lines, each ending in a newline)", topic, len(got), len(want))
	}
}

// Compression codecs in a RecordBatch's attributes.
const (
	codecNone   = 0
	codecSnappy = 2
)

// recordsByCodec reads the segment files of one partition directory and
// counts the records per compression codec of their batch (the low three
// bits of a RecordBatch v2's attributes). It stops at the first zero
// length, where the space reserved ahead of the log's end begins.
func recordsByCodec(t *testing.T, dir string) map[int]int {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments in %s: got %v (%v), want at least one .log file", dir, segs, err)
	}
	// baseOffset int64, batchLength int32, partitionLeaderEpoch int32,
	// magic int8, crc uint32, attributes int16, lastOffsetDelta int32,
	// baseTimestamp int64, maxTimestamp int64, producerId int64,
	// producerEpoch int16, baseSequence int32, recordCount int32, records
	const (
		lengthAt = 8
		magicAt  = 16
		attrsAt  = 21
		countAt  = 57
		header   = 61
	)
	recs := map[int]int{}
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatalf("read segment: %v", err)
		}
		for off := 0; off+header <= len(b); {
			length := int(binary.BigEndian.Uint32(b[off+lengthAt:]))
			if length == 0 {
				break
			}
			if magic := b[off+magicAt]; magic != 2 {
				t.Fatalf("segment %s at byte %d: got magic %d, want 2", seg, off, magic)
			}
			codec := int(binary.BigEndian.Uint16(b[off+attrsAt:]) & 7)
			recs[codec] += int(binary.BigEndian.Uint32(b[off+countAt:]))
			off += 12 + length
		}
	}
	return recs
}

// groupSummary is what testdata/confluent_group.py prints.
type groupSummary struct {
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
	Deliveries     int              `json:"deliveries"`
	Unique         int              `json:"unique"`
	Duplicates     int              `json:"duplicates"`
	BadRecords     []string         `json:"bad_records"`
	Committed      map[string]int64 `json:"committed"`
	CommittedTotal int64            `json:"committed_total"`
	HighWatermarks map[string]int64 `json:"high_watermarks"`
	Done           bool             `json:"done"`
	Error          string           `json:"error"`
}

// testConfluentGroup runs testdata/confluent_group.py: the AdminClient
// creates a topic of 6 partitions, an idempotent producer (acks=all) writes
// the records, and two consumers of one group (cooperative-sticky) read and
// commit them.
func testConfluentGroup(t *testing.T, core *coreProcess) {
	const (
		n          = 10000
		partitions = 6
	)
	out := run(t, 90*time.Second, nil, python, "testdata/confluent_group.py",
		"--bootstrap", core.kafka, "--topic", "confluent-group", "--group", "confluent-group",
		"--records", strconv.Itoa(n), "--partitions", strconv.Itoa(partitions), "--timeout", "60")
	var s groupSummary
	if err := json.Unmarshal(bytes.TrimSpace(out), &s); err != nil {
		t.Fatalf("confluent_group.py: cannot parse the summary: %v\n%s", err, out)
	}
	t.Logf("summary: %s", bytes.TrimSpace(out))
	if s.Error != "" || !s.Done {
		t.Errorf("confluent_group.py: got error %q, done %v; want no error, done", s.Error, s.Done)
	}
	if s.Produced != n || len(s.DeliveryErrors) > 0 {
		t.Errorf("produced: got %d acknowledged, delivery errors %q; want %d, none", s.Produced, s.DeliveryErrors, n)
	}
	if len(s.BadRecords) > 0 {
		t.Errorf("records whose value does not match the key: got %q, want none", s.BadRecords)
	}
	if s.Unique != n {
		t.Errorf("distinct records consumed: got %d, want %d", s.Unique, n)
	}
	// Each consumer commits what it read before a partition is taken
	// away from it, so a record is read twice only if such a commit
	// failed (at-least-once); then duplicates are allowed.
	revokeFailed := false
	for _, c := range s.Consumers {
		revokeFailed = revokeFailed || len(c.RevokeCommitErrors) > 0
	}
	if s.Duplicates != 0 && !revokeFailed {
		t.Errorf("records consumed twice: got %d, want 0 (no commit failed before a revoke)", s.Duplicates)
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
		if len(c.CommitErrors) > 0 {
			t.Logf("%s: commits retried after: %q", c.Name, c.CommitErrors)
		}
		all = append(all, c.Assigned...)
		sum += c.Records
	}
	slices.Sort(all)
	if want := []int32{0, 1, 2, 3, 4, 5}; !slices.Equal(all, want) {
		t.Errorf("partitions held by the two consumers together: got %v, want %v, each once", all, want)
	}
	if sum != s.Deliveries {
		t.Errorf("records per consumer: got %d in total, want %d (all deliveries)", sum, s.Deliveries)
	}

	if s.CommittedTotal != n {
		t.Errorf("committed offsets: got %d in total (%v), want %d", s.CommittedTotal, s.Committed, n)
	}
	var hwTotal int64
	for p := range partitions {
		key := strconv.Itoa(p)
		hwTotal += s.HighWatermarks[key]
		if s.Committed[key] != s.HighWatermarks[key] {
			t.Errorf("partition %d: got committed offset %d, want the high watermark %d", p, s.Committed[key], s.HighWatermarks[key])
		}
	}
	if hwTotal != n {
		t.Errorf("high watermarks: got %d in total (%v), want %d", hwTotal, s.HighWatermarks, n)
	}
}

// coreProcess is a running fluxo core.
type coreProcess struct {
	bin     string
	kafka   string // Kafka listener, 127.0.0.1:port
	http    string
	dataDir string
	cmd     *exec.Cmd
	logs    *syncBuffer
	exited  chan struct{} // closed when cmd.Wait returned
	waitErr error         // cmd.Wait's result, set before exited closes
}

// startCore starts fluxo core on free ports of 127.0.0.1, waits for it to
// say where it listens and for /readyz, and stops it at the end of the test
// with SIGTERM, failing the test unless it exits 0 within 15s.
func startCore(t *testing.T, bin string) *coreProcess {
	t.Helper()
	return startCoreArgs(t, bin)
}

// startCoreArgs is startCore with more command line arguments.
func startCoreArgs(t *testing.T, bin string, extra ...string) *coreProcess {
	t.Helper()
	dataDir := t.TempDir()
	// A free port found by listening on :0 may be taken by someone else
	// before fluxo binds it; then try other ports.
	for attempt := 1; ; attempt++ {
		c := &coreProcess{
			bin:     bin,
			kafka:   freeAddr(t),
			http:    freeAddr(t),
			dataDir: dataDir,
			logs:    &syncBuffer{},
			exited:  make(chan struct{}),
		}
		args := []string{"core", "--data-dir", dataDir, "--kafka-addr", c.kafka, "--http-addr", c.http,
			"--serf-addr", freeAddr(t), "--raft-addr", freeAddr(t), "--log-level", "debug"}
		c.cmd = exec.Command(bin, append(args, extra...)...)
		c.cmd.Stdout = c.logs
		c.cmd.Stderr = c.logs
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("start fluxo core: %v", err)
		}
		go func() {
			c.waitErr = c.cmd.Wait()
			close(c.exited)
		}()
		err := c.waitReady(15 * time.Second)
		if err == nil {
			t.Cleanup(func() { c.stop(t) })
			return c
		}
		c.kill()
		if attempt < 5 && strings.Contains(c.logs.String(), "address already in use") {
			continue
		}
		t.Fatalf("fluxo core: %v\n%s", err, c.logs.tail())
	}
}

// waitReady waits until the process has printed its listen addresses and
// /readyz answers 200.
func (c *coreProcess) waitReady(timeout time.Duration) error {
	started := fmt.Sprintf("fluxo core: Kafka on %s, HTTP on %s", c.kafka, c.http)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return fmt.Errorf("exited before it was ready: %v", c.waitErr)
		default:
		}
		if strings.Contains(c.logs.String(), started) {
			resp, err := client.Get("http://" + c.http + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %v", timeout)
}

// stop sends SIGTERM and wants exit status 0 within 15s; after that it
// kills the process and fails the test.
func (c *coreProcess) stop(t *testing.T) {
	select {
	case <-c.exited:
		t.Errorf("fluxo core exited before the end of the test: %v\n%s", c.waitErr, c.logs.tail())
		return
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM fluxo core: %v", err)
	}
	select {
	case <-c.exited:
		if c.waitErr != nil {
			t.Errorf("fluxo core after SIGTERM: got %v, want exit status 0\n%s", c.waitErr, c.logs.tail())
		}
	case <-time.After(15 * time.Second):
		c.kill()
		t.Errorf("fluxo core after SIGTERM: got no exit within 15s, want exit status 0 (killed it)\n%s", c.logs.tail())
	}
	if t.Failed() {
		t.Logf("fluxo core log:\n%s", c.logs.tail())
	}
}

// kill SIGKILLs the process and waits for it.
func (c *coreProcess) kill() {
	c.cmd.Process.Kill()
	<-c.exited
}

// freeAddr returns 127.0.0.1 with a port nobody listened on a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// run runs a command with a deadline and returns its standard output. It
// fails the test if the command fails or times out, and also if librdkafka
// reports a protocol error on standard error: a client working around a
// malformed response is a broker bug, not a pass.
func run(t *testing.T, timeout time.Duration, stdin *bytes.Reader, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	what := strings.Join(append([]string{filepath.Base(name)}, args...), " ")
	errs := protocolErrors(stderr.Bytes())
	if len(errs) > 0 {
		t.Errorf("%s: got librdkafka protocol errors, want none:\n%s", what, strings.Join(errs, "\n"))
	}
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s: got no exit within %v, want exit status 0\nstderr:\n%s", what, timeout, stderrExcerpt(stderr.Bytes(), errs))
	case err != nil:
		t.Fatalf("%s: got %v, want exit status 0\nstderr:\n%s", what, err, stderrExcerpt(stderr.Bytes(), errs))
	}
	t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
	return stdout.Bytes()
}

// protocolErrors returns the first distinct lines in which librdkafka says
// it could not parse a response or calls the broker's answer a protocol
// error.
func protocolErrors(stderr []byte) []string {
	var errs []string
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "PROTOERR") || strings.Contains(line, "Protocol parse failure") {
			// Drop the "%3|<time>|" prefix so repeats compare equal.
			key := line
			if i := strings.Index(line, "|PROTOERR|"); i >= 0 {
				key = line[i:]
			}
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.HasSuffix(e, key) }) {
				errs = append(errs, line)
			}
			if len(errs) == 4 {
				break
			}
		}
	}
	return errs
}

// stderrExcerpt is the start of a failed command's standard error, or
// "(see above)" when its protocol errors were already reported.
func stderrExcerpt(b []byte, protoErrs []string) string {
	if len(protoErrs) > 0 {
		return "(the protocol errors above, repeated)"
	}
	const n = 40
	lines := strings.SplitN(string(b), "\n", n+1)
	if len(lines) > n {
		lines[n] = "..."
	}
	return strings.Join(lines, "\n")
}

// syncBuffer is a bytes.Buffer that the process's output goroutines and
// the test may use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tail is the end of the output, enough to see why a process failed.
func (b *syncBuffer) tail() string {
	s := b.String()
	const max = 16 << 10
	if len(s) > max {
		s = "...\n" + s[len(s)-max:]
	}
	return s
}

func needKcat(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(kcatBin); err != nil {
		t.Fatalf("kcat: got %v, want it installed (apt-get install kcat; .ci/run does it)", err)
	}
}

func needConfluentKafka(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import confluent_kafka").CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: got %v, want Debian's python3 (apt-get install python3)", python, err)
		}
		t.Fatalf("%s -c 'import confluent_kafka': got %v, want it importable (apt-get install python3-confluent-kafka; .ci/run does it)\n%s", python, err, out)
	}
}
