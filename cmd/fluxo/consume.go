package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(newConsumeCmd) }

// consumeFetchMaxWait is how long a broker may hold a fetch open while there
// is nothing new: Kafka's fetch.max.wait.ms default, shorter than franz-go's
// 5s, so that a partition added to the consumer while a fetch waits is read
// within half a second.
const consumeFetchMaxWait = 500 * time.Millisecond

type consumeOptions struct {
	brokers       *[]string
	group         string
	fromBeginning bool
	format        string
	count         int
	timeout       time.Duration
}

func newConsumeCmd() *cobra.Command {
	var o consumeOptions
	c := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print the records of a topic",
		Long: `Print the records of TOPIC to standard output, one per --format.

Without --group, read every partition directly, starting at the end (only new
records) or, with --from-beginning, at the start of each partition. No
offsets are committed.

With --group, join consumer group G (cooperative-sticky assignment, so other
members keep their partitions while one joins or leaves) and resume from the
group's committed offsets; --from-beginning only applies to partitions the
group has no commit for (Kafka's auto.offset.reset=earliest; otherwise
latest). A record's offset is marked for commit once it is printed; marked
offsets are committed every 5 seconds and when partitions are taken away,
which includes leaving the group on exit. So a record is never committed
before it was printed, and a later run resumes after the last printed record.
On a partition the group had no commit for and where nothing was printed,
the position this run started at is committed (as Kafka's Java consumer
does), so a later run does not skip what was produced there in between.

--format is a template: %t topic, %p partition, %o offset, %k key, %v value,
%h headers (k=v,k2=v2), %T timestamp (ms since the epoch), %% a percent
sign; \n, \t, \r and \\ are a newline, a tab, a carriage return and a
backslash. --format json prints one JSON object per line with the fields
topic, partition, offset, timestamp, key, value and headers (key and value
are null for a null key or value; bytes that are not UTF-8 are replaced).

The command runs until interrupted (Ctrl-C exits 0), until --count records
were printed, or until --timeout passed without a new record.

` + clientSecHelp,
		Example: `  fluxo consume telemetry
  fluxo consume telemetry --from-beginning --count 10
  fluxo consume telemetry --group dashboards --format '%p/%o %k=%v\n'
  fluxo consume alarms --from-beginning --format json --timeout 5s
  fluxo consume telemetry --format '%T\t%h\t%v\n' --brokers core-1:9092,core-2:9092`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConsume(cmd, args[0], o)
		},
	}
	o.brokers = brokersFlag(c)
	f := c.Flags()
	f.StringVar(&o.group, "group", "", "consumer group to join; offsets are committed for it")
	f.BoolVar(&o.fromBeginning, "from-beginning", false, "start at the beginning of each partition (with --group: where the group has no commit)")
	f.StringVar(&o.format, "format", `%v\n`, `record format: a template with %t %p %o %k %v %h %T, \n, \t; or "json"`)
	f.IntVar(&o.count, "count", 0, "exit after this many records (0: no limit)")
	f.DurationVar(&o.timeout, "timeout", 0, "exit after this long without a new record (0: never)")
	return c
}

func runConsume(cmd *cobra.Command, topic string, o consumeOptions) error {
	format, err := parseFormat(o.format)
	if err != nil {
		return err
	}
	if o.count < 0 {
		return fmt.Errorf("--count: got %d, want 0 or more", o.count)
	}
	if o.timeout < 0 {
		return fmt.Errorf("--timeout: got %s, want 0 or more", o.timeout)
	}
	start := kgo.NewOffset().AtEnd()
	if o.fromBeginning {
		start = kgo.NewOffset().AtStart()
	}
	opts := []kgo.Opt{
		kgo.ConsumeTopics(topic),
		// Kafka's auto.offset.reset: where a partition without a commit
		// starts, and where consuming resumes if the log lost data.
		kgo.ConsumeStartOffset(start),
		kgo.ConsumeResetOffset(start),
		kgo.FetchMaxWait(consumeFetchMaxWait),
	}
	var member *groupMember
	if o.group != "" {
		member = &groupMember{group: o.group, fromBeginning: o.fromBeginning, log: logger(cmd)}
		opts = append(opts,
			kgo.ConsumerGroup(o.group),
			kgo.Balancers(kgo.CooperativeStickyBalancer()),
			// Commit only what was printed (marked), every 5s (kgo's
			// default interval) and when partitions are revoked, which
			// includes leaving the group on exit. Rebalances wait while
			// a poll's records are printed, so marks never land on
			// partitions no longer ours.
			kgo.AutoCommitMarks(),
			kgo.BlockRebalanceOnPoll(),
			kgo.AdjustFetchOffsetsFn(member.startPositions),
			kgo.OnPartitionsRevoked(member.revoked),
			kgo.OnPartitionsLost(member.lost),
		)
	}
	cl, err := newClient(cmd, *o.brokers, opts...)
	if err != nil {
		return err
	}
	if member != nil {
		member.cl.Store(cl)
	}

	loopErr := consumeLoop(cmd.Context(), cl, o, format, cmd.OutOrStdout(), logger(cmd))
	if member != nil {
		cl.AllowRebalance()
	}
	cl.Close() // a group member leaves the group, committing first (revoked)
	if loopErr != nil {
		return loopErr
	}
	if member != nil {
		if err := member.err(); err != nil {
			return fmt.Errorf("group %s: cannot commit offsets: %w", o.group, err)
		}
	}
	return nil
}

// groupMember holds what fluxo consume --group adds to franz-go's group
// handling: like Kafka's Java consumer, it commits the position it started
// at on a partition the group had no commit for, even if no record arrived
// there. Without it, a later run would start that partition at the end
// again (auto.offset.reset=latest) and skip the records produced between
// the runs.
//
// The callbacks run in franz-go's group goroutine; mu guards what they
// share with the command.
type groupMember struct {
	group         string
	fromBeginning bool
	log           zerolog.Logger
	cl            atomic.Pointer[kgo.Client] // set once the client exists

	mu       sync.Mutex
	starts   map[string]map[int32]int64 // owned partitions that had no commit: where consuming started
	firstErr error                      // first failed commit
}

// startPositions is kgo's AdjustFetchOffsetsFn: it resolves the start of
// each newly assigned partition without a commit (the log start or end, as
// auto.offset.reset says) to an exact offset, remembers it, and has the
// client start there.
func (m *groupMember) startPositions(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	cl := m.cl.Load()
	if cl == nil {
		return offsets, nil
	}
	var topics []string
	for t, ps := range offsets {
		for _, o := range ps {
			if o.EpochOffset().Offset < 0 {
				topics = append(topics, t)
				break
			}
		}
	}
	if len(topics) == 0 {
		return offsets, nil
	}
	adm := kadm.NewClient(cl)
	list := adm.ListEndOffsets
	if m.fromBeginning {
		list = adm.ListStartOffsets
	}
	listed, err := list(ctx, topics...)
	if err != nil {
		// Not fatal: the client resolves the start itself, and only the
		// start position goes uncommitted.
		m.log.Warn().Str("group", m.group).Err(err).Msg("cannot list start offsets")
		return offsets, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.starts == nil {
		m.starts = make(map[string]map[int32]int64)
	}
	for t, ps := range offsets {
		for p, o := range ps {
			if o.EpochOffset().Offset >= 0 {
				continue
			}
			lo, ok := listed.Lookup(t, p)
			if !ok || lo.Err != nil || lo.Offset < 0 {
				continue
			}
			ps[p] = kgo.NewOffset().At(lo.Offset)
			if m.starts[t] == nil {
				m.starts[t] = make(map[int32]int64)
			}
			m.starts[t][p] = lo.Offset
		}
	}
	return offsets, nil
}

// revoked is kgo's OnPartitionsRevoked, called on a rebalance and when the
// member leaves the group: it commits the marked offsets, as kgo does by
// default, and the start position of each revoked partition that has
// neither a mark nor a commit.
func (m *groupMember) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	commit := cl.MarkedOffsets()
	committed := cl.CommittedOffsets()
	m.mu.Lock()
	for t, ps := range revoked {
		for _, p := range ps {
			start, ok := m.starts[t][p]
			if !ok {
				continue
			}
			delete(m.starts[t], p)
			if _, marked := commit[t][p]; marked {
				continue
			}
			if _, done := committed[t][p]; done {
				continue
			}
			if commit == nil {
				commit = make(map[string]map[int32]kgo.EpochOffset)
			}
			if commit[t] == nil {
				commit[t] = make(map[int32]kgo.EpochOffset)
			}
			commit[t][p] = kgo.EpochOffset{Epoch: -1, Offset: start}
		}
	}
	m.mu.Unlock()
	if len(commit) == 0 {
		return
	}
	cl.CommitOffsetsSync(ctx, commit, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil {
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err = kerr.ErrorForCode(p.ErrorCode); err != nil {
						err = fmt.Errorf("topic %s partition %d: %w", t.Topic, p.Partition, err)
						break
					}
				}
			}
		}
		if err != nil {
			m.log.Warn().Str("group", m.group).Err(err).Msg("offset commit failed")
			m.mu.Lock()
			if m.firstErr == nil {
				m.firstErr = err
			}
			m.mu.Unlock()
		}
	})
}

// lost is kgo's OnPartitionsLost: lost partitions are no longer ours to
// commit.
func (m *groupMember) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for t, ps := range lost {
		for _, p := range ps {
			delete(m.starts[t], p)
		}
	}
}

func (m *groupMember) err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.firstErr
}

// consumeLoop polls cl and prints records to w until ctx is done, o.count
// records were printed, or o.timeout passed without a record. In a group, it
// marks every printed record for commit.
func consumeLoop(ctx context.Context, cl *kgo.Client, o consumeOptions, format *recordFormat, w io.Writer, log zerolog.Logger) error {
	printed := 0
	lastErr := make(map[string]string) // topic/partition → last error logged, to log each change once
	var buf []byte
	for {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if o.timeout > 0 {
			pollCtx, cancel = context.WithTimeout(ctx, o.timeout)
		}
		max := 0
		if o.count > 0 {
			max = o.count - printed
		}
		fetches := cl.PollRecords(pollCtx, max)
		timedOut := pollCtx.Err() != nil && ctx.Err() == nil
		cancel()

		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			where := t + "/" + strconv.Itoa(int(p))
			if lastErr[where] == err.Error() {
				return
			}
			lastErr[where] = err.Error()
			log.Warn().Str("topic", t).Int32("partition", p).Err(err).Msg("fetch error")
		})
		recs := fetches.Records()
		for _, r := range recs {
			buf = format.append(buf, r)
		}
		var werr error
		if len(buf) > 0 {
			_, werr = w.Write(buf) // one write per poll
			buf = buf[:0]
		}
		n := 0
		if werr == nil {
			// Printed: only now may the group commit past them.
			n = len(recs)
			if o.group != "" {
				cl.MarkCommitRecords(recs...)
			}
		}
		if o.group != "" {
			cl.AllowRebalance()
		}
		printed += n
		switch {
		case werr != nil:
			return fmt.Errorf("write: %w", werr)
		case o.count > 0 && printed >= o.count:
			return nil
		case ctx.Err() != nil: // interrupted: a normal way to stop
			return nil
		case timedOut && n == 0:
			return nil
		}
	}
}

// recordFormat prints a record as --format says: a parsed template, or one
// JSON object per line.
type recordFormat struct {
	json  bool
	parts []formatPart // the template, when not json
}

// formatPart is a piece of a template: literal text, or a verb (one of
// "tpokvhT") standing for a field of the record.
type formatPart struct {
	lit  string
	verb byte
}

// parseFormat parses the value of --format: "json", or a template of
// literal text, % verbs and \ escapes. An unknown verb or escape, or a
// template ending in a lone % or \, is an error.
func parseFormat(s string) (*recordFormat, error) {
	if s == "json" {
		return &recordFormat{json: true}, nil
	}
	f := &recordFormat{}
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			f.parts = append(f.parts, formatPart{lit: string(lit)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' && c != '\\' {
			lit = append(lit, c)
			continue
		}
		if i+1 == len(s) {
			return nil, fmt.Errorf("--format %q: a lone %c at the end, want %%%% or \\\\ for a literal one", s, c)
		}
		i++
		next := s[i]
		if c == '%' {
			switch next {
			case 't', 'p', 'o', 'k', 'v', 'h', 'T':
				flush()
				f.parts = append(f.parts, formatPart{verb: next})
			case '%':
				lit = append(lit, '%')
			default:
				return nil, fmt.Errorf("--format %q: unknown verb %%%c, want one of %%t %%p %%o %%k %%v %%h %%T %%%%", s, next)
			}
			continue
		}
		switch next {
		case 'n':
			lit = append(lit, '\n')
		case 't':
			lit = append(lit, '\t')
		case 'r':
			lit = append(lit, '\r')
		case '\\':
			lit = append(lit, '\\')
		default:
			return nil, fmt.Errorf("--format %q: unknown escape \\%c, want one of \\n \\t \\r \\\\", s, next)
		}
	}
	flush()
	return f, nil
}

// append appends r, formatted, to b.
func (f *recordFormat) append(b []byte, r *kgo.Record) []byte {
	if f.json {
		return appendJSON(b, r)
	}
	for _, p := range f.parts {
		switch p.verb {
		case 0:
			b = append(b, p.lit...)
		case 't':
			b = append(b, r.Topic...)
		case 'p':
			b = strconv.AppendInt(b, int64(r.Partition), 10)
		case 'o':
			b = strconv.AppendInt(b, r.Offset, 10)
		case 'k':
			b = append(b, r.Key...)
		case 'v':
			b = append(b, r.Value...)
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, h.Key...)
				b = append(b, '=')
				b = append(b, h.Value...)
			}
		case 'T':
			b = strconv.AppendInt(b, r.Timestamp.UnixMilli(), 10)
		}
	}
	return b
}

// jsonRecord is a record as --format json prints it.
type jsonRecord struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Timestamp int64        `json:"timestamp"` // ms since the epoch
	Key       *string      `json:"key"`       // null for a null key
	Value     *string      `json:"value"`     // null for a null value (a tombstone)
	Headers   []jsonHeader `json:"headers"`   // in record order, never null
}

type jsonHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// appendJSON appends r to b as one JSON object and a newline.
func appendJSON(b []byte, r *kgo.Record) []byte {
	j := jsonRecord{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: r.Timestamp.UnixMilli(),
		Key:       bytesPtr(r.Key),
		Value:     bytesPtr(r.Value),
		Headers:   make([]jsonHeader, len(r.Headers)),
	}
	for i, h := range r.Headers {
		j.Headers[i] = jsonHeader{Key: h.Key, Value: string(h.Value)}
	}
	w := appendWriter{b: b}
	enc := json.NewEncoder(&w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(j); err != nil {
		panic(fmt.Sprintf("consume: a record of strings and numbers failed to encode: %v", err))
	}
	return w.b
}

func bytesPtr(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// appendWriter is an io.Writer appending to a byte slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
