package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
)

// ErrNoConnection is returned by Run when no device could connect to the
// broker, wrapped with the broker's address and the last connection error.
var ErrNoConnection = errors.New("devices: no device could connect")

// Observer receives a snapshot of the counters every Config.ReportInterval
// while Run runs (not after it returned), always from the same goroutine.
// It should return quickly: the next snapshot waits for it.
type Observer func(Stats)

// Counts are the message counters of a fleet or of one kind of device.
// Every message a device hands to its MQTT client is in Sent, and ends in
// Acked or Errors, or is still unacknowledged (Unacked).
type Counts struct {
	// Sent counts the messages handed to the MQTT client: readings,
	// alarms and command replies.
	Sent int64
	// Acked counts the messages the broker acknowledged: PUBACK at QoS 1,
	// PUBCOMP at QoS 2; at QoS 0, those written to the connection.
	Acked int64
	// Errors counts the messages the client reported as failed, and the
	// commands that arrived faster than the device could answer them.
	Errors int64
	// Dropped counts the messages not sent because the device was offline
	// or had MaxPending messages waiting for an acknowledgement.
	Dropped int64
	// Alarms counts the alarms among Sent.
	Alarms int64
	// Commands counts the command replies among Sent.
	Commands int64
}

// Unacked returns the messages sent and neither acknowledged nor failed:
// in flight while Run runs, never acknowledged once it returned.
func (c Counts) Unacked() int64 { return c.Sent - c.Acked - c.Errors }

func (c *Counts) add(o Counts) {
	c.Sent += o.Sent
	c.Acked += o.Acked
	c.Errors += o.Errors
	c.Dropped += o.Dropped
	c.Alarms += o.Alarms
	c.Commands += o.Commands
}

// Stats is a snapshot of a fleet's counters.
type Stats struct {
	// Counts are the totals of ByKind.
	Counts
	// ByKind holds the counters of each kind, indexed by Kind.
	ByKind [numKinds]Counts
	// Devices is the size of the fleet.
	Devices int
	// Connected is how many devices connected (and subscribed to their
	// commands) at least once.
	Connected int
	// Online is how many devices are connected at the time of the snapshot.
	Online int
	// Reconnects counts the connections made again after one was lost.
	Reconnects int64
	// Elapsed is how long the fleet has been publishing: from the moment
	// it was connected until the snapshot, or until it stopped.
	Elapsed time.Duration
	// Seed is the seed of the run, the one picked at random if
	// Config.Seed was 0.
	Seed uint64
}

// Run connects the fleet that cfg describes to cfg.Broker, waits up to
// cfg.ConnectTimeout for every device to connect, publishes for
// cfg.Duration or until ctx is done, waits up to cfg.DrainTimeout for
// outstanding acknowledgements, disconnects every device and returns the
// final counters. observe, if not nil, gets a snapshot every
// cfg.ReportInterval.
//
// Stopping because ctx is done is not an error. Run returns an error only
// for an invalid cfg or, wrapping ErrNoConnection, when no device connected.
func Run(ctx context.Context, cfg Config, observe Observer) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	return newFleet(cfg).run(ctx, observe)
}

// counters are the live Counts of one kind, updated by its devices'
// goroutines and read by snapshots.
type counters struct {
	sent, acked, errors, dropped, alarms, commands atomic.Int64
}

func (c *counters) load() Counts {
	return Counts{
		Sent:     c.sent.Load(),
		Acked:    c.acked.Load(),
		Errors:   c.errors.Load(),
		Dropped:  c.dropped.Load(),
		Alarms:   c.alarms.Load(),
		Commands: c.commands.Load(),
	}
}

// fleet is the state of one Run.
type fleet struct {
	cfg     Config
	log     zerolog.Logger
	seed    uint64
	devices []*device

	counts       [numKinds]counters
	connected    atomic.Int64 // devices connected and subscribed at least once
	reconnects   atomic.Int64
	allConnected chan struct{} // closed when connected reaches len(devices)

	// Publishing period, Unix nanoseconds; 0 until it starts, until it ends.
	start, stop atomic.Int64

	errMu   sync.Mutex
	lastErr error // guarded by errMu: the last failed connection attempt
}

func newFleet(cfg Config) *fleet {
	f := &fleet{cfg: cfg, log: cfg.Logger, seed: cfg.Seed, allConnected: make(chan struct{})}
	if f.seed == 0 {
		f.seed = rand.Uint64()
	}
	n := cfg.Sensors + cfg.Cars + cfg.Panels
	// Each device raises alarms as a Poisson process; together they make
	// AlarmRate per second.
	alarmRate := cfg.AlarmRate / float64(n)
	for _, k := range Kinds {
		count, rate := cfg.Sensors, cfg.Rate
		switch k {
		case Car:
			count = cfg.Cars
		case Panel:
			count, rate = cfg.Panels, cfg.PanelRate
		}
		for i := 1; i <= count; i++ {
			f.devices = append(f.devices, f.newDevice(k, i, rate, alarmRate))
		}
	}
	return f
}

func (f *fleet) run(ctx context.Context, observe Observer) (Stats, error) {
	f.log.Debug().Str("broker", f.cfg.Broker).Int("devices", len(f.devices)).Uint64("seed", f.seed).Msg("connecting devices")
	for _, d := range f.devices {
		d.client.Connect() // completes in the background: see onConnect
	}

	if observe != nil {
		quit := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.report(observe, quit)
		}()
		defer func() {
			close(quit)
			wg.Wait()
		}()
	}

	wait := time.NewTimer(f.cfg.ConnectTimeout)
	select {
	case <-f.allConnected:
	case <-wait.C:
	case <-ctx.Done():
	}
	wait.Stop()

	if f.connected.Load() == 0 {
		var wg sync.WaitGroup
		for _, d := range f.devices {
			wg.Go(d.disconnect)
		}
		wg.Wait()
		return f.snapshot(), f.noConnection()
	}
	if n := f.connected.Load(); int(n) < len(f.devices) && ctx.Err() == nil {
		f.log.Warn().Int64("connected", n).Int("devices", len(f.devices)).Msg("publishing before every device is connected")
	} else {
		f.log.Debug().Int64("connected", n).Msg("devices connected")
	}

	var (
		runCtx context.Context
		cancel context.CancelFunc
	)
	if f.cfg.Duration > 0 {
		runCtx, cancel = context.WithTimeout(ctx, f.cfg.Duration)
	} else {
		runCtx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	f.start.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	for _, d := range f.devices {
		wg.Go(func() { d.run(runCtx) })
	}
	<-runCtx.Done()
	f.stop.Store(time.Now().UnixNano())
	wg.Wait()
	st := f.snapshot()
	f.log.Debug().Int64("sent", st.Sent).Int64("acked", st.Acked).Int64("errors", st.Errors).Msg("devices stopped")
	return st, nil
}

// report calls observe with a snapshot every ReportInterval until quit is
// closed.
func (f *fleet) report(observe Observer, quit <-chan struct{}) {
	t := time.NewTicker(f.cfg.ReportInterval)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
			observe(f.snapshot())
		}
	}
}

// snapshot returns the counters now. It is safe to call from any goroutine.
func (f *fleet) snapshot() Stats {
	st := Stats{
		Devices:    len(f.devices),
		Connected:  int(f.connected.Load()),
		Reconnects: f.reconnects.Load(),
		Seed:       f.seed,
	}
	for _, k := range Kinds {
		st.ByKind[k] = f.counts[k].load()
		st.Counts.add(st.ByKind[k])
	}
	for _, d := range f.devices {
		if d.client.IsConnectionOpen() {
			st.Online++
		}
	}
	if start := f.start.Load(); start != 0 {
		end := f.stop.Load()
		if end == 0 {
			end = time.Now().UnixNano()
		}
		st.Elapsed = time.Duration(end - start)
	}
	return st
}

func (f *fleet) setLastErr(err error) {
	f.errMu.Lock()
	f.lastErr = err
	f.errMu.Unlock()
}

func (f *fleet) noConnection() error {
	f.errMu.Lock()
	last := f.lastErr
	f.errMu.Unlock()
	if last == nil {
		return fmt.Errorf("%w to %s", ErrNoConnection, f.cfg.Broker)
	}
	return fmt.Errorf("%w to %s: %w", ErrNoConnection, f.cfg.Broker, last)
}

// onNotification keeps the last connection error, for ErrNoConnection.
func (f *fleet) onNotification(_ mqtt.Client, n mqtt.ConnectionNotification) {
	switch n := n.(type) {
	case mqtt.ConnectionNotificationFailed:
		f.setLastErr(n.Reason)
	case mqtt.ConnectionNotificationBrokerFailed:
		f.setLastErr(n.Reason)
	}
}

// cmdBuffer is how many commands a device holds before it answers them.
const cmdBuffer = 64

// maxAlarmWait bounds the wait for a device's next alarm, so that a tiny
// alarm rate cannot overflow a time.Duration.
const maxAlarmWait = 24 * time.Hour

// device is one simulated device. Its goroutine (run) owns every field but
// client, cmds and connects, which Paho's goroutines use too.
type device struct {
	f        *fleet
	kind     Kind
	id       string
	cmdTopic string
	counts   *counters
	interval time.Duration // between regular messages, on average
	alarm    float64       // alarms per second

	client   mqtt.Client
	cmds     chan mqtt.Message // commands to answer
	connects atomic.Int64      // successful connections so far

	rng     *rand.Rand
	model   model
	seq     uint64       // of the last message sent
	pending []mqtt.Token // sent and not yet acknowledged, oldest first
}

func (f *fleet) newDevice(k Kind, n int, rate, alarmRate float64) *device {
	id := DeviceID(k, n)
	rng := rand.New(rand.NewPCG(f.seed, uint64(k)<<32|uint64(n)))
	d := &device{
		f:        f,
		kind:     k,
		id:       id,
		cmdTopic: Topic(k, id, StreamCommand),
		counts:   &f.counts[k],
		interval: time.Duration(float64(time.Second) / rate),
		alarm:    alarmRate,
		cmds:     make(chan mqtt.Message, cmdBuffer),
		rng:      rng,
		model:    newModel(k, rng),
	}
	cfg := f.cfg
	o := mqtt.NewClientOptions().
		AddBroker(brokerURL(cfg.Broker)).
		SetClientID(id).
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(min(time.Second, cfg.MaxReconnectInterval)).
		SetMaxReconnectInterval(cfg.MaxReconnectInterval).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetWriteTimeout(cfg.ConnectTimeout).
		SetKeepAlive(30 * time.Second).
		// Commands queued in the session arrive as soon as the connection
		// is up, before the subscription is renewed: the default handler
		// takes them.
		SetDefaultPublishHandler(d.onMessage).
		SetOnConnectHandler(d.onConnect).
		SetConnectionLostHandler(d.onConnectionLost).
		SetConnectionNotificationHandler(f.onNotification)
	if cfg.Username != "" {
		o.SetUsername(cfg.Username).SetPassword(cfg.Password)
	}
	if cfg.TLS != nil {
		o.SetTLSConfig(cfg.TLS)
	}
	d.client = mqtt.NewClient(o)
	return d
}

// onConnect runs on a goroutine of its own after each successful
// connection. It renews the command subscription (a broker that lost the
// session has forgotten it), then counts the connection: a device is
// connected once it can take commands.
func (d *device) onConnect(c mqtt.Client) {
	n := d.connects.Add(1)
	if n > 1 {
		d.f.reconnects.Add(1)
		d.f.log.Debug().Str("client", d.id).Msg("reconnected")
	}
	tok := c.Subscribe(d.cmdTopic, 1, nil)
	if !tok.WaitTimeout(d.f.cfg.ConnectTimeout) {
		d.f.log.Warn().Str("client", d.id).Str("topic", d.cmdTopic).Msg("no answer to subscribe")
	} else if err := tok.Error(); err != nil {
		d.f.log.Warn().Err(err).Str("client", d.id).Str("topic", d.cmdTopic).Msg("cannot subscribe")
	}
	if n == 1 && d.f.connected.Add(1) == int64(len(d.f.devices)) {
		close(d.f.allConnected)
	}
}

func (d *device) onConnectionLost(_ mqtt.Client, err error) {
	d.f.log.Debug().Err(err).Str("client", d.id).Msg("connection lost")
}

// onMessage runs on Paho's router goroutine: it hands commands to the
// device's goroutine and must not block.
func (d *device) onMessage(_ mqtt.Client, m mqtt.Message) {
	if m.Topic() != d.cmdTopic {
		return
	}
	select {
	case d.cmds <- m:
	default:
		d.counts.errors.Add(1)
		d.f.log.Debug().Str("client", d.id).Msg("command dropped: too many waiting")
	}
}

// run publishes until ctx is done, then waits for outstanding
// acknowledgements and disconnects.
func (d *device) run(ctx context.Context) {
	defer d.disconnect()
	defer d.drain()

	now := time.Now()
	// Start at a random point of the first interval, so that the fleet
	// does not publish in lockstep.
	nextTick := now.Add(time.Duration(d.rng.Float64() * float64(d.interval)))
	nextAlarm := d.nextAlarm(now)
	timer := time.NewTimer(time.Until(earliest(nextTick, nextAlarm)))
	defer timer.Stop()
	for {
		var acked <-chan struct{}
		if len(d.pending) > 0 {
			acked = d.pending[0].Done()
		}
		select {
		case <-ctx.Done():
			return
		case <-acked:
			d.reap()
		case m := <-d.cmds:
			d.answer(m)
		case now := <-timer.C:
			if !now.Before(nextTick) {
				d.tick()
				nextTick = d.nextTick(nextTick, now)
			}
			if !now.Before(nextAlarm) {
				alarm, stream := d.model.raise(d.rng)
				d.publish(stream, alarm, d.f.cfg.QoS, true)
				nextAlarm = d.nextAlarm(now)
			}
			timer.Reset(time.Until(earliest(nextTick, nextAlarm)))
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// nextTick returns the time of the regular message after the one due at
// prev: one interval later, ±20 %. A device that fell more than an interval
// behind skips what it missed rather than catching up in a burst.
func (d *device) nextTick(prev, now time.Time) time.Time {
	jitter := func() time.Duration { return time.Duration((0.8 + 0.4*d.rng.Float64()) * float64(d.interval)) }
	next := prev.Add(jitter())
	if next.Before(now.Add(-d.interval)) {
		next = now.Add(jitter())
	}
	return next
}

// nextAlarm returns when the device raises its next alarm, an exponential
// wait after now.
func (d *device) nextAlarm(now time.Time) time.Time {
	if d.alarm <= 0 {
		return now.Add(maxAlarmWait)
	}
	wait := d.rng.ExpFloat64() / d.alarm * float64(time.Second)
	return now.Add(time.Duration(min(wait, float64(maxAlarmWait))))
}

// tick advances the model and publishes its reading, and the alarm the
// reading raised, if any.
func (d *device) tick() {
	reading, stream, alarm, alarmStream := d.model.step(d.rng, d.interval.Seconds())
	d.publish(stream, reading, d.f.cfg.QoS, false)
	if alarm != nil {
		d.publish(alarmStream, alarm, d.f.cfg.QoS, true)
	}
}

// answer replies to command m.
func (d *device) answer(m mqtt.Message) {
	reply := &Reply{Status: StatusOK}
	var cmd Command
	if err := json.Unmarshal(m.Payload(), &cmd); err != nil {
		reply.Status, reply.Error = StatusError, "command is not a JSON object: "+err.Error()
	} else {
		reply.CmdID = cmd.ID
	}
	if d.publish(StreamReply, reply, 1, false) {
		d.counts.commands.Add(1)
	}
}

// publish stamps m with the device's next seq and the time and hands it to
// the MQTT client. It reports false if the message was dropped instead.
func (d *device) publish(stream string, m message, qos byte, alarm bool) bool {
	if len(d.pending) >= d.f.cfg.MaxPending {
		d.reap()
	}
	if !d.client.IsConnectionOpen() || len(d.pending) >= d.f.cfg.MaxPending {
		d.counts.dropped.Add(1)
		return false
	}
	d.seq++
	m.stamp(Header{Device: d.id, Seq: d.seq, TsMs: time.Now().UnixMilli()})
	payload, err := json.Marshal(m)
	if err != nil {
		panic("devices: cannot encode a message: " + err.Error()) // all fields are plain values
	}
	tok := d.client.Publish(Topic(d.kind, d.id, stream), qos, false, payload)
	d.counts.sent.Add(1)
	if alarm {
		d.counts.alarms.Add(1)
	}
	d.pending = append(d.pending, tok)
	return true
}

// reap counts the acknowledgements of the oldest pending messages, up to
// the first one still waiting.
func (d *device) reap() {
	n := 0
	for _, tok := range d.pending {
		select {
		case <-tok.Done():
		default:
			d.pending = d.pending[n:]
			return
		}
		d.count(tok)
		n++
	}
	d.pending = d.pending[:0]
}

func (d *device) count(tok mqtt.Token) {
	if err := tok.Error(); err != nil {
		d.counts.errors.Add(1)
		d.f.log.Debug().Err(err).Str("client", d.id).Msg("publish failed")
		return
	}
	d.counts.acked.Add(1)
}

// drain waits up to DrainTimeout for the acknowledgements still due. The
// messages that get none stay in Unacked.
func (d *device) drain() {
	if len(d.pending) == 0 {
		return
	}
	t := time.NewTimer(d.f.cfg.DrainTimeout)
	defer t.Stop()
	for i, tok := range d.pending {
		select {
		case <-tok.Done():
			d.count(tok)
		case <-t.C:
			d.pending = d.pending[i:]
			return
		}
	}
	d.pending = nil
}

// disconnect closes the connection, giving the client a moment to send
// DISCONNECT, or stops its connection attempts.
func (d *device) disconnect() {
	d.client.Disconnect(250)
}
