package spool

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// Group commit for Submit. Each lane has an appender: Submit encodes the
// message straight into the lane's open group (one RecordBatch being
// filled) and returns; the appender's goroutine takes every group filled
// since its last round, writes each as one batch (one CRC, one pwrite),
// fsyncs once for all of them under SyncAlways, makes them readable and
// calls their done functions. While it writes and fsyncs, Submit fills the
// next groups, so a round covers whatever arrived meanwhile: one fsync for
// as many messages as there are connections × messages in flight.
const (
	// maxGroupBytes bounds one group's batch (a bigger message gets a
	// group of its own).
	maxGroupBytes = 256 << 10
	// maxQueuedBytes bounds the bytes submitted to a lane and not yet
	// written: Submit waits beyond it, which slows the publishers down.
	maxQueuedBytes = 4 << 20
)

// group is one RecordBatch being filled by Submit.
type group struct {
	buf          []byte // commitlog.HeaderSize reserved bytes, then the records
	n            int32  // records
	first, maxTS int64  // timestamps, unix ms
	admitted     int64  // bytes admitted to the budget for it
	dones        []func(error)
}

// appender writes the groups of one lane. Submit (any goroutine) fills
// groups under mu; run (one goroutine, owned by the Spool, stopped by
// close) writes them.
type appender struct {
	s        *Spool
	lane     Lane
	log      *commitlog.Log
	maxGroup int           // bytes of one group's batch, at most (unless one message needs more)
	delay    time.Duration // Config.CommitDelay, on the telemetry lane under SyncAlways; else 0

	mu     sync.Mutex
	space  sync.Cond // signalled when queued drops; waited on by Submit
	open   *group    // being filled; nil if none
	filled []*group  // full, waiting for run, in order
	queued int64     // bytes in open and filled
	closed bool
	spare  []*group // written groups kept for reuse

	wake chan struct{} // capacity 1: work is waiting
	quit chan struct{} // closed by close
	done chan struct{} // closed when run returns
}

func newAppender(s *Spool, lane Lane) *appender {
	a := &appender{s: s, lane: lane, log: s.lanes[lane], maxGroup: int(min(maxGroupBytes, s.cfg.SegmentBytes-4096)),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	a.space.L = &a.mu
	if lane == Telemetry && s.cfg.Sync == SyncAlways {
		a.delay = s.cfg.CommitDelay
	}
	return a
}

// commitSiblings is how many messages a write of the telemetry lane
// carries at least for the next one to wait Config.CommitDelay.
const commitSiblings = 64

// Submit stores one message without waiting for the disk: it checks the
// message and the disk budget, encodes the message into its lane's next
// batch and returns. done is then called exactly once, from the lane's
// appender goroutine, with nil once the message is as durable as the sync
// policy promises (written to the file under SyncNever and SyncBatch,
// fsynced under SyncAlways) and readable by the uplink, or with the error
// that kept it out (ErrFull for a full disk, ErrClosed, a write error).
// done must not block.
//
// Submit fails at once, without calling done, for what needs no I/O to
// tell: ErrTooLarge, ErrFull when the budget cannot make room, ErrClosed.
// It waits while 4 MiB submitted to the lane are not yet written. The
// message is copied: the caller may reuse it once Submit returns.
//
// Messages submitted one after the other (from one goroutine, or ordered
// otherwise) are stored in that order within their lane, and their done
// functions are called in that order.
func (s *Spool) Submit(m Message, done func(error)) error {
	n, err := s.check(m)
	if err != nil {
		return err
	}
	a := s.appenders[m.Lane]
	size := int64(n) + 32
	a.mu.Lock()
	for a.queued > maxQueuedBytes && !a.closed {
		a.space.Wait()
	}
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	// Admitted under a.mu so that the budget check and the queueing are
	// one step for the lane (eviction does not take a.mu).
	if err := s.admit(size); err != nil {
		a.mu.Unlock()
		return err
	}
	ts := m.Time.UnixMilli()
	g := a.open
	if g != nil && len(g.buf)+n+64 > a.maxGroup {
		a.filled = append(a.filled, g)
		g = nil
	}
	if g == nil {
		g = a.newGroup(ts)
		a.open = g
	}
	before := len(g.buf)
	th := kmsg.Header{Key: topicHeader, Value: []byte(m.Topic)}
	g.buf = commitlog.AppendRecordWithHeader(g.buf, g.n, ts-g.first, m.Key, m.Value, th, m.Headers)
	g.n++
	g.maxTS = max(g.maxTS, ts)
	g.admitted += size
	g.dones = append(g.dones, done)
	a.queued += int64(len(g.buf) - before)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// newGroup returns an empty group, reusing a written one. Called with mu
// held.
func (a *appender) newGroup(first int64) *group {
	var g *group
	if n := len(a.spare); n > 0 {
		g = a.spare[n-1]
		a.spare = a.spare[:n-1]
		g.buf = g.buf[:commitlog.HeaderSize]
		g.dones = g.dones[:0]
	} else {
		g = &group{buf: make([]byte, commitlog.HeaderSize, 16<<10)}
	}
	g.n, g.first, g.maxTS, g.admitted = 0, first, first, 0
	return g
}

// run writes groups until close, then writes what is left and returns.
func (a *appender) run() {
	defer close(a.done)
	var groups []*group
	busy := false
	for {
		if busy && a.delay > 0 {
			a.gather()
		}
		a.mu.Lock()
		groups = append(groups[:0], a.filled...)
		a.filled = a.filled[:0]
		if a.open != nil {
			groups = append(groups, a.open)
			a.open = nil
		}
		closed := a.closed
		a.mu.Unlock()
		if len(groups) == 0 {
			if closed {
				return
			}
			busy = false // the lane went quiet: the next message does not wait
			select {
			case <-a.wake:
			case <-a.quit:
				a.mu.Lock()
				a.closed = true
				a.space.Broadcast()
				a.mu.Unlock()
			}
			continue
		}
		busy = a.write(groups) >= commitSiblings
	}
}

// gather waits up to the commit delay for more messages to join the next
// write, unless a full group is already waiting or the spool closes.
//
// Group commit alone (one write and one fsync for whatever arrived during
// the last one) made rounds of about a hundred messages under a hundred
// publishers, 500 or more fsyncs a second, and an fsync costs far more
// CPU than a message: 160 µs of the process's on the reference virtual
// disk, and the Go runtime's monitor wakes every 20 µs while one blocks.
// Waiting 2 ms when the last round was big (commitSiblings) halves the
// fsyncs and cut the edge's CPU per message by a tenth; telemetry
// acknowledgements wait those 2 ms longer, when publishers already wait
// tens of milliseconds for a busy edge. A lane whose rounds are small
// (a device's pace, a single publisher's window) never waits, nor does
// the alarm lane. PostgreSQL's commit_delay and commit_siblings are the
// same idea.
func (a *appender) gather() {
	a.mu.Lock()
	full := len(a.filled) > 0
	a.mu.Unlock()
	if full {
		return
	}
	t := time.NewTimer(a.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-a.quit:
	}
}

// write appends the groups, one batch each, fsyncs them under SyncAlways,
// publishes them to readers and reports to their done functions. It
// returns how many messages it wrote.
func (a *appender) write(groups []*group) int64 {
	var err error
	var last int64 = -1
	var records, admitted, queued int64
	written := 0
	for _, g := range groups {
		admitted += g.admitted
		queued += int64(len(g.buf) - commitlog.HeaderSize)
		if err != nil {
			continue
		}
		commitlog.FinishBatch(g.buf, commitlog.NoProducer(g.first), g.n, g.maxTS)
		// The batch was encoded here, CRC and all: no need to check it again.
		var b commitlog.Batch
		if b, err = commitlog.ParseHeader(g.buf); err != nil {
			panic("spool: the appender encoded an invalid batch: " + err.Error())
		}
		var res commitlog.AppendResult
		res, err = a.log.AppendValidated(g.buf, []commitlog.Batch{b})
		if err != nil {
			continue
		}
		last = res.LastOffset
		records += int64(g.n)
		written++
	}
	if written > 0 && a.s.cfg.Sync == SyncAlways {
		if serr := a.log.Sync(); serr != nil {
			err, written, records = serr, 0, 0
		}
	}
	if written > 0 {
		a.s.acctMu[a.lane].Lock()
		a.log.SetHighWatermark(last + 1)
		a.s.accepted[a.lane].Add(records)
		a.s.acctMu[a.lane].Unlock()
	}
	a.s.pending.Add(-admitted)
	a.mu.Lock()
	a.queued -= queued
	a.space.Broadcast()
	a.mu.Unlock()
	err = a.s.appendError(a.lane, err)
	for i, g := range groups {
		gerr := err
		if i < written {
			gerr = nil
		}
		for _, done := range g.dones {
			done(gerr)
		}
		clear(g.dones)
	}
	a.mu.Lock()
	for _, g := range groups {
		if cap(g.buf) <= 2*a.maxGroup && len(a.spare) < 4 {
			a.spare = append(a.spare, g)
		}
	}
	a.mu.Unlock()
	return records
}

// appendError maps a lane's write error to what Append and Submit return.
func (s *Spool) appendError(l Lane, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: disk full: %v", ErrFull, err)
	case errors.Is(err, commitlog.ErrClosed):
		return ErrClosed
	}
	return fmt.Errorf("spool: lane %s: %w", l, err)
}

// close makes run write what was submitted and return; later Submits
// fail with ErrClosed.
func (a *appender) close() {
	close(a.quit)
	<-a.done
}
