package broker

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fetcher replicates every partition this broker follows from one leader,
// as Kafka's replica fetcher threads do: one Fetch request with this
// broker's id as replica id carries all of them. A partition whose leader
// or epoch changed first truncates its log to where it agrees with the
// leader (OffsetForLeaderEpoch, KIP-101/279), then fetches from its log
// end.
type fetcher struct {
	b      *Broker
	leader int32
	addr   string
	cl     *kgo.Client

	mu    sync.Mutex // guards parts
	parts map[*Partition]*fetchState

	wake chan struct{} // buffered: a partition was added
	stop chan struct{}
	done chan struct{}
}

type fetchState struct {
	epoch     int32
	truncated bool // truncation to the leader's history is done for epoch
	// pausedUntil: the leader refused at this epoch (it may not have
	// applied the metadata change yet); try again after it.
	pausedUntil time.Time
}

// InterBrokerOpts are the options of a client from this broker to
// another at addr, on the inter-broker listener, as the replica fetchers
// connect (Config.ReplicaTLS, Config.ReplicaDial): one seed, no retries.
// The client id is name, a dash and this broker's id.
func (b *Broker) InterBrokerOpts(name, addr string) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ClientID(name + "-" + strconv.Itoa(int(b.NodeID()))),
		kgo.DialTimeout(2 * time.Second),
		kgo.RequestRetries(0),
		kgo.WithLogger(nil),
	}
	if b.cfg.ReplicaTLS != nil {
		opts = append(opts, kgo.DialTLSConfig(b.cfg.ReplicaTLS.Clone()))
	}
	if b.cfg.ReplicaDial != nil {
		opts = append(opts, kgo.Dialer(b.cfg.ReplicaDial))
	}
	return opts
}

func newFetcher(b *Broker, leader int32, addr string) (*fetcher, error) {
	cl, err := kgo.NewClient(b.InterBrokerOpts("fluxo-replica", addr)...)
	if err != nil {
		return nil, err
	}
	f := &fetcher{b: b, leader: leader, addr: addr, cl: cl, parts: map[*Partition]*fetchState{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	return f, nil
}

// follow adds p at leader epoch epoch, or restarts it at a new epoch.
func (f *fetcher) follow(p *Partition, epoch int32) {
	f.mu.Lock()
	f.parts[p] = &fetchState{epoch: epoch}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// unfollow removes p; it reports whether any partition is left.
func (f *fetcher) unfollow(p *Partition) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.parts, p)
	return len(f.parts) > 0
}

func (f *fetcher) close() {
	close(f.stop)
	<-f.done
	f.cl.Close()
}

func (f *fetcher) run() {
	defer close(f.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-f.stop:
			cancel()
		case <-f.done:
		}
	}()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-f.stop:
			return
		default:
		}
		err := f.round(ctx)
		if err == nil {
			backoff = 50 * time.Millisecond
			continue
		}
		if errors.Is(err, errPaused) {
			select {
			case <-time.After(refusedPause):
			case <-f.stop:
				return
			}
			continue
		}
		if errors.Is(err, errIdle) {
			select {
			case <-f.wake:
			case <-f.stop:
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if ctx.Err() == nil {
			f.b.log.Debug().Err(err).Int32("leader", f.leader).Str("addr", f.addr).Msg("replica fetch failed")
		}
		select {
		case <-time.After(backoff):
		case <-f.stop:
			return
		}
		backoff = min(2*backoff, time.Second)
	}
}

var (
	errIdle   = errors.New("nothing to fetch")
	errPaused = errors.New("every partition paused")
)

type fetchItem struct {
	p  *Partition
	st fetchState
}

// round truncates the partitions that need it, then sends one Fetch.
func (f *fetcher) round(ctx context.Context) error {
	f.mu.Lock()
	var items []fetchItem
	now := time.Now()
	for p, st := range f.parts {
		if now.After(st.pausedUntil) {
			items = append(items, fetchItem{p, *st})
		}
	}
	paused := len(items) < len(f.parts)
	f.mu.Unlock()
	if len(items) == 0 {
		if paused {
			return errPaused
		}
		return errIdle
	}
	var ready []fetchItem
	var toTruncate []fetchItem
	for _, it := range items {
		if it.st.truncated {
			ready = append(ready, it)
		} else {
			toTruncate = append(toTruncate, it)
		}
	}
	if len(toTruncate) > 0 {
		return f.truncate(ctx, toTruncate)
	}
	return f.fetch(ctx, ready)
}

func (f *fetcher) setState(p *Partition, epoch int32, fn func(*fetchState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st := f.parts[p]; st != nil && st.epoch == epoch {
		fn(st)
	}
}

// truncate asks the leader where each partition's history ends for the
// last epoch this replica wrote, and cuts the log there.
func (f *fetcher) truncate(ctx context.Context, items []fetchItem) error {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = f.b.NodeID()
	type ask struct {
		it    fetchItem
		epoch int32
	}
	asks := map[string]map[int32]ask{}
	for _, it := range items {
		eps := it.p.log.LeaderEpochs()
		if len(eps) == 0 {
			// Nothing written at any epoch: nothing can diverge.
			f.setState(it.p, it.st.epoch, func(st *fetchState) { st.truncated = true })
			continue
		}
		last := eps[len(eps)-1].Epoch
		if asks[it.p.Topic] == nil {
			asks[it.p.Topic] = map[int32]ask{}
		}
		asks[it.p.Topic][it.p.Index] = ask{it, last}
	}
	if len(asks) == 0 {
		return nil
	}
	for topic, parts := range asks {
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = topic
		for idx, a := range parts {
			rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
			rp.Partition = idx
			rp.CurrentLeaderEpoch = a.it.st.epoch
			rp.LeaderEpoch = a.epoch
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kresp, err := f.cl.SeedBrokers()[0].Request(rctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			a, ok := asks[t.Topic][rp.Partition]
			if !ok {
				continue
			}
			p, epoch := a.it.p, a.it.st.epoch
			if rp.ErrorCode != 0 {
				f.refused(p, epoch, rp.ErrorCode)
				continue
			}
			if err := p.truncateTo(p.divergence(rp.LeaderEpoch, rp.EndOffset)); err != nil {
				f.b.log.Error().Err(err).Str("topic", p.Topic).Int32("partition", p.Index).Msg("cannot truncate replica")
				continue
			}
			f.setState(p, epoch, func(st *fetchState) { st.truncated = true })
		}
	}
	return nil
}

// refusedPause is how long a partition the leader refused waits before
// it asks again: the leader usually has not applied the metadata change
// that made it leader yet.
const refusedPause = 100 * time.Millisecond

// refused pauses a partition the leader will not serve at this epoch.
func (f *fetcher) refused(p *Partition, epoch int32, code int16) {
	f.b.log.Debug().Str("topic", p.Topic).Int32("partition", p.Index).Int32("epoch", epoch).Str("error", kerr.ErrorForCode(code).Error()).Msg("leader refused replica fetch")
	f.setState(p, epoch, func(st *fetchState) { st.pausedUntil = time.Now().Add(refusedPause) })
}

func (f *fetcher) fetch(ctx context.Context, items []fetchItem) error {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = f.b.NodeID()
	req.MaxWaitMillis = int32(f.b.cfg.ReplicaFetchWait.Milliseconds())
	req.MinBytes = 1
	req.MaxBytes = 16 << 20
	req.SessionEpoch = -1
	byTP := map[string]map[int32]fetchItem{}
	for _, it := range items {
		if byTP[it.p.Topic] == nil {
			byTP[it.p.Topic] = map[int32]fetchItem{}
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = it.p.Topic
			req.Topics = append(req.Topics, rt)
		}
		byTP[it.p.Topic][it.p.Index] = it
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = it.p.Index
		rp.CurrentLeaderEpoch = it.st.epoch
		rp.FetchOffset = it.p.log.LogEndOffset()
		rp.LogStartOffset = it.p.log.LogStartOffset()
		rp.PartitionMaxBytes = 4 << 20
		for i := range req.Topics {
			if req.Topics[i].Topic == it.p.Topic {
				req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
			}
		}
	}
	rctx, cancel := context.WithTimeout(ctx, f.b.cfg.ReplicaFetchWait+10*time.Second)
	defer cancel()
	kresp, err := f.cl.SeedBrokers()[0].Request(rctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		return kerr.ErrorForCode(resp.ErrorCode)
	}
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			it, ok := byTP[t.Topic][rp.Partition]
			if !ok {
				continue
			}
			p, epoch := it.p, it.st.epoch
			switch rp.ErrorCode {
			case 0:
			case kerr.OffsetOutOfRange.Code:
				// Ahead of the leader (it lost an unsynced tail) or
				// behind its log start: cut to its high watermark and
				// truncate again by epoch.
				if p.log.LogEndOffset() > rp.HighWatermark && rp.HighWatermark >= 0 {
					if err := p.truncateTo(rp.HighWatermark); err != nil {
						f.b.log.Error().Err(err).Str("topic", p.Topic).Int32("partition", p.Index).Msg("cannot truncate replica")
					}
				} else {
					f.b.log.Error().Str("topic", p.Topic).Int32("partition", p.Index).Int64("log_end", p.log.LogEndOffset()).Int64("leader_log_start", rp.LogStartOffset).Msg("replica is behind the leader's log start")
				}
				f.setState(p, epoch, func(st *fetchState) { st.truncated = false })
				continue
			default:
				f.refused(p, epoch, rp.ErrorCode)
				continue
			}
			if err := p.appendReplica(rp.RecordBatches, rp.HighWatermark, epoch); err != nil {
				if errors.Is(err, errStaleFetch) {
					continue
				}
				f.b.log.Warn().Err(err).Str("topic", p.Topic).Int32("partition", p.Index).Msg("cannot append fetched records")
				f.setState(p, epoch, func(st *fetchState) { st.truncated = false })
			}
		}
	}
	return nil
}
