package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/bridge/downlink"
	"github.com/fluxo-io/fluxo/bridge/registry"
	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/bridge/uplink"
)

// Config configures a Forwarder.
type Config struct {
	// Name names the node to the core: the uplink's client id when
	// Uplink.ClientID is empty, and the downlink's consumer group
	// (Name-downlink) when Downlink.Group is empty. Required.
	Name string
	// SpoolDir is the spool's directory. It also keeps the uplink's
	// producer state: Uplink.StateDir is set to it.
	SpoolDir string
	// Spool configures the spool; its Logger is set from Logger.
	Spool spool.Config
	// Uplink configures the uplink; its Logger and StateDir are set here,
	// an empty ClientID takes Name.
	Uplink uplink.Config
	// Downlink, when set, consumes commands for devices and publishes
	// them through the Publisher given to Start. Empty Brokers take the
	// uplink's, and so do TLS and SASL when it has neither; an empty
	// Group takes Name-downlink; an empty ClientID takes the same.
	Downlink *downlink.Config
	// Registry, when set, is the device registry the downlink consults
	// and queues commands in (see downlink.Config.Registry); the input
	// feeds it. Without one, the downlink learns fleets from the
	// messages appended.
	Registry *registry.Registry
	// CoreTimeout, when positive, makes the forwarder unready (Ready)
	// while a lane with records to send has not had one acknowledged by
	// the core for longer (since its last acknowledgement, or since
	// Start). Zero: a core that is away never makes it unready.
	CoreTimeout time.Duration
	// Logger receives the forwarder's logs, and its parts' with a part
	// field (spool, uplink, downlink); the zero value discards them.
	Logger zerolog.Logger
}

// Validate reports the first setting that cannot work. The spool's and
// the uplink's own settings are checked when they are built.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("forward: empty name")
	case c.SpoolDir == "":
		return errors.New("forward: empty spool directory")
	case c.Downlink != nil && c.Downlink.Topic == "":
		return errors.New("forward: downlink: empty commands topic")
	}
	return nil
}

// Forwarder stores the messages of an input in the spool and forwards
// them to the core; see the package documentation. Append and Submit may
// be called from many goroutines at once, the other methods from one.
type Forwarder struct {
	cfg    Config // defaults filled in
	log    zerolog.Logger
	spool  *spool.Spool
	uplink *uplink.Uplink
	down   *downlink.Downlink // nil without a downlink, or before Start
	fleets *fleets            // nil without a downlink

	cancel context.CancelFunc
	upWG   sync.WaitGroup // the uplink
	downWG sync.WaitGroup // the downlink

	mu        sync.Mutex // guards started, stopped, startedAt
	started   bool
	stopped   bool
	startedAt time.Time
}

// New opens the spool, recovering what a previous run left in it, and
// builds the uplink over it; Start runs them.
func New(cfg Config) (*Forwarder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Forwarder{log: cfg.Logger}
	sc := cfg.Spool
	sc.Logger = cfg.Logger.With().Str("part", "spool").Logger()
	sp, err := spool.Open(cfg.SpoolDir, sc)
	if err != nil {
		return nil, err
	}
	f.spool = sp
	uc := cfg.Uplink
	uc.StateDir = cfg.SpoolDir
	uc.Logger = cfg.Logger.With().Str("part", "uplink").Logger()
	if uc.ClientID == "" {
		uc.ClientID = cfg.Name
	}
	if f.uplink, err = uplink.New(uc, sp); err != nil {
		sp.Close()
		return nil, err
	}
	cfg.Uplink = uc
	if cfg.Downlink != nil {
		dc := *cfg.Downlink
		if len(dc.Brokers) == 0 {
			dc.Brokers = uc.Brokers
		}
		if dc.TLS == nil && dc.SASL == nil {
			dc.TLS, dc.SASL = uc.TLS, uc.SASL
		}
		if dc.Group == "" {
			dc.Group = cfg.Name + "-downlink"
		}
		if dc.ClientID == "" {
			dc.ClientID = cfg.Name + "-downlink"
		}
		if dc.Origin == "" {
			dc.Origin = cfg.Name
		}
		dc.Registry = cfg.Registry
		dc.Logger = cfg.Logger.With().Str("part", "downlink").Logger()
		cfg.Downlink = &dc
		if cfg.Registry == nil {
			f.fleets = &fleets{m: map[string]string{}}
		}
	}
	f.cfg = cfg
	return f, nil
}

// Start runs the uplink and, when configured, the downlink, which
// publishes commands through pub (required then; ignored otherwise).
func (f *Forwarder) Start(pub downlink.Publisher) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started || f.stopped {
		return errors.New("forward: already started")
	}
	if f.cfg.Downlink != nil {
		if pub == nil {
			return errors.New("forward: a downlink needs a publisher")
		}
		var resolve downlink.Resolver
		if f.fleets != nil {
			resolve = f.fleets.lookup
		}
		dc := *f.cfg.Downlink
		if !dc.FromStart && dc.StartAfter.IsZero() {
			first, err := firstStart(f.cfg.SpoolDir, time.Now())
			if err != nil {
				return fmt.Errorf("forward: %w", err)
			}
			dc.StartAfter = first.Add(-commandClockMargin)
		}
		d, err := downlink.New(dc, pub, resolve)
		if err != nil {
			return fmt.Errorf("forward: %w", err)
		}
		f.down = d
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.upWG.Add(1)
	go func() {
		defer f.upWG.Done()
		f.uplink.Run(ctx)
	}()
	if f.down != nil {
		f.downWG.Add(1)
		go func() {
			defer f.downWG.Done()
			f.down.Run(ctx)
		}()
	}
	f.started = true
	f.startedAt = time.Now()
	return nil
}

// Stop stops the uplink (a send in flight is abandoned: its plan is saved
// and resent at the next start) and the downlink (which leaves its group),
// waiting for each at most until ctx is done, then logs the spool's
// accounting and closes the uplink and the spool. A part that does not
// stop in time is left behind and reported in the error; the spool is
// then left open under it. Stop may be called more than once, and
// without Start.
func (f *Forwarder) Stop(ctx context.Context) error {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return nil
	}
	f.stopped = true
	f.mu.Unlock()
	if f.cancel != nil {
		f.cancel()
	}
	var errs []error
	upStopped := wait(ctx, &f.upWG)
	if !upStopped {
		f.log.Warn().Msg("uplink did not stop in time; leaving it behind")
		errs = append(errs, fmt.Errorf("forward: uplink: %w", ctx.Err()))
	}
	// The downlink's group coordinator may hold its leave for a
	// rebalance.
	if !wait(ctx, &f.downWG) {
		f.log.Warn().Msg("downlink did not stop in time; leaving it behind")
		errs = append(errs, fmt.Errorf("forward: downlink: %w", ctx.Err()))
	}
	for _, s := range f.spool.Stats() {
		f.log.Info().Str("lane", s.Lane.String()).Int64("accepted", s.Accepted).Int64("delivered", s.Delivered).
			Int64("evicted", s.Evicted).Int64("expired", s.Expired).Int64("spooled", s.Spool).Msg("spool accounting")
	}
	if upStopped {
		f.uplink.Close()
		errs = append(errs, f.spool.Close())
	}
	return errors.Join(errs...)
}

// wait waits for wg, or until ctx is done; it reports whether wg finished.
func wait(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// Append stores messages in the spool (see spool.Spool.Append).
func (f *Forwarder) Append(msgs ...spool.Message) error {
	if f.fleets != nil {
		for _, m := range msgs {
			f.fleets.learnFrom(m)
		}
	}
	return f.spool.Append(msgs...)
}

// Submit stores a message in the spool without waiting for the disk (see
// spool.Spool.Submit).
func (f *Forwarder) Submit(m spool.Message, done func(error)) error {
	if f.fleets != nil {
		f.fleets.learnFrom(m)
	}
	return f.spool.Submit(m, done)
}

// Ready reports whether the forwarder is ready: no uplink lane is parked
// on a permanent error (an ACL, a missing topic, a credential: the node
// would spool forever without someone acting), and, with a CoreTimeout,
// no lane has had records waiting without an acknowledgement from the
// core for longer than that. A core that is away for less does not make
// it unready: the inputs keep spooling and the uplink catches up. When not ready, why names the parked lanes and their
// reasons.
func (f *Forwarder) Ready() (ok bool, why string) {
	var parked, away []string
	f.mu.Lock()
	since := f.startedAt
	f.mu.Unlock()
	now := time.Now()
	for _, s := range f.uplink.Stats() {
		if s.Parked {
			parked = append(parked, fmt.Sprintf("%s (%s)", s.Lane, s.ParkReason))
			continue
		}
		last := since
		if s.LastAck.After(last) {
			last = s.LastAck
		}
		if f.cfg.CoreTimeout > 0 && !since.IsZero() && s.Backlog > 0 && now.Sub(last) > f.cfg.CoreTimeout {
			away = append(away, fmt.Sprintf("%s (%d records waiting, nothing acknowledged for %s)", s.Lane, s.Backlog, now.Sub(last).Round(time.Second)))
		}
	}
	var reasons []string
	if len(parked) > 0 {
		reasons = append(reasons, "uplink parked: "+strings.Join(parked, ", "))
	}
	if len(away) > 0 {
		reasons = append(reasons, fmt.Sprintf("core not reached for more than %s: %s", f.cfg.CoreTimeout, strings.Join(away, ", ")))
	}
	if len(reasons) > 0 {
		return false, strings.Join(reasons, "; ")
	}
	return true, ""
}

// Readyz writes a node's /readyz answer and reports whether the node is
// ready. inputDown, when not empty, says why the node's input is not
// ready ("not subscribed to ..."): the answer is then only that. Else the
// node is as ready as the forwarder (Ready); the answer's first line says
// so, then come the input's own lines (inputState) and a line per uplink
// lane with its state and backlog.
func (f *Forwarder) Readyz(w io.Writer, inputDown string, inputState ...string) bool {
	if inputDown != "" {
		fmt.Fprintln(w, "not ready: "+inputDown)
		return false
	}
	ok, why := f.Ready()
	if ok {
		fmt.Fprintln(w, "ready")
	} else {
		fmt.Fprintln(w, "not ready: "+why)
	}
	for _, l := range inputState {
		fmt.Fprintln(w, l)
	}
	for _, s := range f.uplink.Stats() {
		state := "down"
		switch {
		case s.Parked:
			state = fmt.Sprintf("parked since %s on %s: %s", s.ParkedSince.UTC().Format(time.RFC3339), s.ParkReason, s.ParkError)
		case s.Connected:
			state = "up"
		}
		fmt.Fprintf(w, "uplink %s: %s, backlog %d\n", s.Lane, state, s.Backlog)
	}
	return ok
}

// Spool is the forwarder's spool.
func (f *Forwarder) Spool() *spool.Spool { return f.spool }

// Uplink is the forwarder's uplink.
func (f *Forwarder) Uplink() *uplink.Uplink { return f.uplink }

// Downlink is the forwarder's downlink; nil without one, or before Start.
func (f *Forwarder) Downlink() *downlink.Downlink { return f.down }

// Config returns the configuration in use, defaults filled in.
func (f *Forwarder) Config() Config { return f.cfg }

// fleets maps device ids to fleets, as learned from traffic.
type fleets struct {
	mu sync.RWMutex // guards m
	m  map[string]string
}

// learnFrom learns the fleet of the device of m's MQTT topic,
// {fleet}/{device}/...; it allocates only when the pair is new.
func (f *fleets) learnFrom(m spool.Message) {
	for _, h := range m.Headers {
		if h.Key != route.HeaderTopic {
			continue
		}
		t := h.Value
		i := bytes.IndexByte(t, '/')
		if i <= 0 {
			return
		}
		j := bytes.IndexByte(t[i+1:], '/')
		if j <= 0 {
			return
		}
		f.learn(t[i+1:i+1+j], t[:i])
		return
	}
}

func (f *fleets) learn(device, fleet []byte) {
	f.mu.RLock()
	cur, ok := f.m[string(device)]
	f.mu.RUnlock()
	if !ok || cur != string(fleet) {
		f.mu.Lock()
		f.m[string(device)] = string(fleet)
		f.mu.Unlock()
	}
}

func (f *fleets) lookup(device string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.m[device]
	return v, ok
}

// commandClockMargin is how far before the edge's first start a new
// downlink group begins reading commands: room for a producer whose
// clock is behind the edge's. A command that old is at worst delivered
// (or expired) once more than needed, never skipped.
const commandClockMargin = time.Minute

// firstStartFile keeps, in the spool directory, when this edge first
// started (unix milliseconds).
const firstStartFile = "first-start"

// firstStart returns when the edge keeping its spool in dir first
// started, recording now if this is that start.
func firstStart(dir string, now time.Time) (time.Time, error) {
	path := filepath.Join(dir, firstStartFile)
	b, err := os.ReadFile(path)
	if err == nil {
		ms, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if perr == nil {
			return time.UnixMilli(ms), nil
		}
		// A torn write: this start stands in for the first.
	} else if !errors.Is(err, os.ErrNotExist) {
		return time.Time{}, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(strconv.FormatInt(now.UnixMilli(), 10)+"\n"), 0o644); err != nil {
		return time.Time{}, fmt.Errorf("cannot record the first start: %w", err)
	}
	return now, nil
}
