// Package downlink delivers commands from the core to devices: records on
// the core topic "commands", keyed by device id, are published over MQTT
// (QoS 1) to the device's command topic, and every command is answered
// with a status record on "command-acks", keyed by the command's id.
//
// A command's MQTT topic is the record's mqtt.topic header, else
// {fleet}/{device}/cmd with the fleet from the record's fleet header or
// from the device registry (the fleet of the topics the device published
// or subscribed on). With a registry (the edge), a command goes out only
// when the device's session has a subscription matching that topic: the
// device is online, or offline with a persistent session that the MQTT
// server keeps QoS 1 messages for; or any session subscribed to it, when
// the publisher knows them (SubscriberIndex). Otherwise (a device never seen, or one
// not subscribed yet) the command waits in the registry, persisted and
// bounded, until the device subscribes or the command expires.
//
// Statuses (the value's "status", also header command.status):
//
//	queued     waiting at the edge for the device
//	delivered  handed to the device's session
//	acked      the device answered on the command's response topic
//	expired    the expiry (header expires_ms, else the record time +
//	           Config.TTL) passed before delivery
//	rejected   no topic can be found, or the queue is full
//
// A command's offset is committed only once its status record is written
// (delivered, queued, expired or rejected): no command is dropped
// silently. Delivery is at-least-once: after a crash, commands whose
// status was not written are handled again (MQTT QoS 1 is at-least-once as
// well; commands carry an id for that).
//
// MQTT 5: the command's record headers become user properties of the
// publish, except the mqtt.* and edge.* ones; mqtt.content_type,
// mqtt.payload_format, mqtt.response_topic, mqtt.correlation_data and
// mqtt.message_expiry set the matching properties. A command that names a
// response topic (its correlation data defaults to the command id) is
// answered by the device with a publish on that topic carrying the same
// correlation data: that answer lands in command-acks as the command's
// "acked" status, with the response. MQTT 3.1.1 devices have no
// correlation data: they answer on the command's topic + "/reply"
// ({fleet}/{device}/cmd/reply) with a JSON object carrying the command id
// ("id" or "command_id"); with a registry, that answer is the command's
// "acked" status too. The routing rules still send the answer itself to
// the core as they would any publish.
package downlink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/fluxo-io/fluxo/bridge/registry"
	"github.com/fluxo-io/fluxo/bridge/route"
	"github.com/fluxo-io/fluxo/internal/logadapt"
)

// Publisher hands a message to the MQTT server (the edge's inline client).
type Publisher interface {
	Publish(topic string, payload []byte, qos byte, retain bool) error
}

// Message is a command as published to a device, with its MQTT 5
// properties (dropped for MQTT 3.1.1 subscribers).
type Message struct {
	Topic           string
	Payload         []byte
	QoS             byte
	ContentType     string
	PayloadFormat   *byte // nil: not set
	ResponseTopic   string
	CorrelationData []byte
	MessageExpiry   uint32 // seconds; 0: none
	User            []route.Property
}

// MessagePublisher is a Publisher that can also set MQTT 5 properties
// (the edge is one). The downlink uses PublishMessage when its publisher
// has it.
type MessagePublisher interface {
	Publisher
	PublishMessage(m Message) error
}

// SubscriberIndex is a Publisher that knows whether any session (online,
// or offline and persistent) is subscribed to a topic: the edge is one.
// With it, a command goes out when someone (the device, or a gateway
// acting for it) will receive it; without it, when the registry shows the
// device itself subscribed.
type SubscriberIndex interface {
	HasSubscriber(topic string) bool
}

// Resolver returns the fleet a device belongs to, if known; it is used
// without a registry (the bridge learns fleets from the traffic it
// relays).
type Resolver func(device string) (fleet string, ok bool)

// Headers a command record may carry.
const (
	// HeaderTopic names the exact MQTT topic to publish the command on.
	HeaderTopic = route.HeaderTopic
	// HeaderFleet names the device's fleet: the command goes to
	// {fleet}/{device}/cmd.
	HeaderFleet = "fleet"
	// HeaderCommandID is the command's id, the key of its status records.
	// Without it, the "id" field of a JSON object value, else
	// {topic}-{partition}-{offset}.
	HeaderCommandID = "command_id"
	// HeaderExpiresMS is the command's expiry, unix milliseconds.
	HeaderExpiresMS = "expires_ms"
	// MQTT 5 properties of the publish, named as the edge names them on
	// the way in. The Message Expiry Interval is the time left before the
	// command's own expiry (HeaderExpiresMS or the TTL).
	HeaderContentType     = route.HeaderContentType
	HeaderPayloadFormat   = route.HeaderPayloadFormat   // "0" bytes, "1" UTF-8
	HeaderResponseTopic   = route.HeaderResponseTopic   // where the device answers
	HeaderCorrelationData = route.HeaderCorrelationData // raw bytes
	// Headers of a status record.
	HeaderStatus = "command.status"
	HeaderID     = "command.id"
	HeaderDevice = "device"
)

// Config configures the downlink.
type Config struct {
	Brokers  []string
	Topic    string // core topic with commands (default "commands")
	Group    string // consumer group; one per edge, so every edge sees every command
	ClientID string
	// AcksTopic receives the status records (default "command-acks").
	AcksTopic string
	// TTL is a command's lifetime from its record time when it has no
	// expires_ms header (default 24h).
	TTL time.Duration
	// FromStart makes a new consumer group start at the beginning of
	// Topic; by default it starts at the end (an edge new to the core
	// does not replay old commands). A group that committed resumes.
	FromStart bool
	// StartAfter, without FromStart, makes a new consumer group start at
	// the first command recorded at or after this time rather than at
	// the end: the end is read when the group is first assigned a
	// partition, seconds after the edge starts, and a command produced
	// in between would otherwise be skipped. The forwarder sets it to
	// the edge's first start (kept in its spool directory), less a margin
	// for the producers' clocks.
	StartAfter time.Time
	// Registry, when set, tells which devices can take a command now and
	// keeps the others' commands (the edge). Without one, a command goes
	// out when its topic is known and is rejected otherwise.
	Registry *registry.Registry
	// RetryInterval is how often queued commands and failed status
	// writes are tried again (default 1s); a device subscribing wakes the
	// queue at once.
	RetryInterval time.Duration
	// Origin names this edge or bridge in status records.
	Origin string
	// TLS, when set, encrypts the connections to the brokers (and
	// presents a client certificate if it has one). Nil: plaintext.
	TLS *tls.Config
	// SASL, when set, authenticates each connection (PLAIN, SCRAM).
	// Nil: no SASL.
	SASL sasl.Mechanism
	// Logger receives downlink events. Zero value: no logs.
	Logger zerolog.Logger
}

// Defaults.
const (
	DefaultTTL           = 24 * time.Hour
	DefaultAcksTopic     = "command-acks"
	DefaultRetryInterval = time.Second
)

// DefaultConfig consumes "commands" from a core on 127.0.0.1:9092.
func DefaultConfig() Config {
	return Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "commands", AcksTopic: DefaultAcksTopic,
		Group: "fluxo-edge-downlink", ClientID: "fluxo-edge-downlink", TTL: DefaultTTL,
		RetryInterval: DefaultRetryInterval, Logger: zerolog.Nop()}
}

// Stats counts the downlink's work, by status written.
type Stats struct {
	Delivered     int64 // commands handed to the MQTT server
	Queued        int64 // commands put in the registry's queue
	Acked         int64 // answers written
	Expired       int64 // commands past their expiry
	Undeliverable int64 // rejected: no topic for the device, or queue full
	Errors        int64 // publish and status write failures (retried)
}

// Downlink consumes commands and publishes them to devices.
type Downlink struct {
	cfg     Config
	log     zerolog.Logger
	pub     Publisher
	mpub    MessagePublisher // pub, when it is one
	subs    SubscriberIndex  // pub, when it is one
	resolve Resolver
	reg     *registry.Registry
	cl      *kgo.Client

	delivered, queued, acked, expired, undeliverable, errs atomic.Int64
}

// New connects a consumer group member; Run consumes.
func New(cfg Config, pub Publisher, resolve Resolver) (*Downlink, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" || cfg.Group == "" {
		return nil, errors.New("downlink: brokers, topic and group are required")
	}
	if cfg.AcksTopic == "" {
		cfg.AcksTopic = DefaultAcksTopic
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	reset := kgo.NewOffset().AtEnd()
	switch {
	case cfg.FromStart:
		reset = kgo.NewOffset().AtStart()
	case !cfg.StartAfter.IsZero():
		reset = kgo.NewOffset().AfterMilli(cfg.StartAfter.UnixMilli())
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.WithLogger(logadapt.Kgo(cfg.Logger, kgo.LogLevelWarn)),
		kgo.ConsumerGroup(cfg.Group),
		// Static membership (KIP-345): a restarted edge takes its place
		// in the group at once instead of waiting out the session of the
		// member it was before a crash, and does not leave on close.
		kgo.InstanceID(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.AllowAutoTopicCreation(),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(reset),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}
	if cfg.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.TLS))
	}
	if cfg.SASL != nil {
		opts = append(opts, kgo.SASL(cfg.SASL))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	d := &Downlink{cfg: cfg, log: cfg.Logger, pub: pub, resolve: resolve, reg: cfg.Registry, cl: cl}
	d.mpub, _ = pub.(MessagePublisher)
	d.subs, _ = pub.(SubscriberIndex)
	return d, nil
}

// deliverable reports whether a command for device on topic can go out
// now (see SubscriberIndex).
func (d *Downlink) deliverable(device, topic string) bool {
	if topic == "" {
		return false
	}
	if d.subs != nil {
		return d.subs.HasSubscriber(topic)
	}
	dev, known := d.reg.Get(device)
	return known && dev.Subscribed(topic)
}

// Run delivers commands until ctx ends, then leaves the group. Failures do
// not end it: fetch and commit errors are logged (franz-go retries them),
// a failed publish or status write is retried; a command's offset is
// committed only once its status is written.
func (d *Downlink) Run(ctx context.Context) {
	defer d.close()
	var wg sync.WaitGroup
	if d.reg != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d.queueLoop(ctx) }()
	}
	defer wg.Wait()
	for {
		fs := d.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			d.log.Warn().Err(err).Str("topic", t).Int32("partition", p).Msg("commands fetch failed")
		})
		var done []*kgo.Record
		var statuses []status
		fs.EachRecord(func(r *kgo.Record) {
			if ctx.Err() != nil {
				return
			}
			for {
				st, ok := d.handle(r, time.Now())
				if ok {
					statuses = append(statuses, st)
					done = append(done, r)
					return
				}
				if !sleep(ctx, d.cfg.RetryInterval) {
					return
				}
			}
		})
		for len(statuses) > 0 && !d.write(ctx, statuses...) {
			if !sleep(ctx, d.cfg.RetryInterval) {
				return // not committed: handled again at the next start
			}
		}
		if len(done) > 0 {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := d.cl.CommitRecords(cctx, done...); err != nil {
				d.log.Warn().Err(err).Msg("cannot commit handled commands")
			}
			cancel()
		}
	}
}

// leaveTimeout bounds how long the downlink waits for its group
// coordinator to answer its LeaveGroup when it stops.
const leaveTimeout = 3 * time.Second

// close leaves the consumer group, waiting at most leaveTimeout for it,
// then closes the client. A client still finding its coordinator (a core
// just back from an outage) holds its leave until it has joined, which
// can take its retry backoffs; the edge's shutdown must not wait for that,
// so past the bound the client is closed in the background and the
// process's exit ends it. Handled commands are committed as they go: a
// leave cut short costs the group a session timeout, not a command.
func (d *Downlink) close() {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := d.cl.LeaveGroupContext(ctx); err != nil {
		d.log.Warn().Err(err).Msg("the commands group not left in time; closing the client in the background")
		go d.cl.Close()
		return
	}
	d.cl.Close()
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// command is a command record, parsed.
type command struct {
	id, device string
	topic      string // explicit (mqtt.topic), else ""
	fleet      string // from the fleet header, else ""
	deadline   time.Time
	msg        Message // without Topic
}

func parse(r *kgo.Record, ttl time.Duration) command {
	c := command{device: string(r.Key), deadline: r.Timestamp.Add(ttl)}
	c.msg.Payload = r.Value
	c.msg.QoS = 1
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case HeaderTopic:
			if v != "" && !strings.ContainsAny(v, "+#") && !strings.HasPrefix(v, "$") {
				c.topic = v
			}
		case HeaderFleet:
			c.fleet = v
		case HeaderCommandID:
			c.id = v
		case HeaderExpiresMS:
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				c.deadline = time.UnixMilli(ms)
			}
		case HeaderContentType:
			c.msg.ContentType = v
		case HeaderPayloadFormat:
			if v == "0" || v == "1" {
				b := v[0] - '0'
				c.msg.PayloadFormat = &b
			}
		case HeaderResponseTopic:
			if v != "" && !strings.ContainsAny(v, "+#") {
				c.msg.ResponseTopic = v
			}
		case HeaderCorrelationData:
			c.msg.CorrelationData = h.Value
		}
		if !route.Reserved(h.Key) {
			c.msg.User = append(c.msg.User, route.Property{Key: h.Key, Val: v})
		}
	}
	if c.id == "" {
		var obj struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(r.Value, &obj) == nil && len(obj.ID) > 0 {
			var s string
			if json.Unmarshal(obj.ID, &s) == nil {
				c.id = s
			} else {
				c.id = string(obj.ID)
			}
		}
	}
	if c.id == "" {
		c.id = fmt.Sprintf("%s-%d-%d", r.Topic, r.Partition, r.Offset)
	}
	if c.msg.ResponseTopic != "" && c.msg.CorrelationData == nil {
		c.msg.CorrelationData = []byte(c.id)
	}
	return c
}

// handle decides a command's fate and acts on it (publish or queue); ok
// false means retry (a publish or the queue's disk failed).
func (d *Downlink) handle(r *kgo.Record, now time.Time) (st status, ok bool) {
	c := parse(r, d.cfg.TTL)
	st = status{ID: c.id, Device: c.device}
	if c.device == "" || strings.ContainsAny(c.device, "/+#") {
		return d.reject(st, "no device id in the record key"), true
	}
	if !now.Before(c.deadline) {
		st.Status, st.Reason = registry.StatusExpired, "expired before it reached the edge"
		return st, true
	}
	topic := d.topicFor(c)
	if d.reg == nil {
		if topic == "" {
			return d.reject(st, "unknown device fleet"), true
		}
		return d.publish(st, c, topic, now)
	}
	if d.deliverable(c.device, topic) {
		return d.publish(st, c, topic, now)
	}
	q := registry.Command{ID: c.id, Device: c.device, Topic: c.topic, Payload: c.msg.Payload, Queued: now, Deadline: c.deadline}
	for _, h := range r.Headers {
		q.Headers = append(q.Headers, registry.Header{Key: h.Key, Value: h.Value})
	}
	switch err := d.reg.Enqueue(q); {
	case errors.Is(err, registry.ErrQueueFull):
		return d.reject(st, "command queue full"), true
	case err != nil:
		d.errs.Add(1)
		d.log.Warn().Err(err).Str("device", c.device).Msg("cannot queue command")
		return st, false
	}
	st.Status, st.Topic = registry.StatusQueued, topic
	d.log.Debug().Str("device", c.device).Str("command", c.id).Msg("command queued: device cannot take it yet")
	return st, true
}

func (d *Downlink) reject(st status, why string) status {
	st.Status, st.Reason = registry.StatusRejected, why
	d.log.Warn().Str("device", st.Device).Str("command", st.ID).Str("reason", why).Msg("command rejected")
	return st
}

// publish hands c to the MQTT server on topic.
func (d *Downlink) publish(st status, c command, topic string, now time.Time) (status, bool) {
	m := c.msg
	m.Topic = topic
	if m.MessageExpiry == 0 {
		// A persistent session offline does not get it past its expiry.
		m.MessageExpiry = uint32((c.deadline.Sub(now) + time.Second - 1) / time.Second)
	}
	if d.reg != nil {
		// Without a response topic, the device may answer on the
		// command topic + /reply with the command id in its JSON (the
		// MQTT 3.1.1 way).
		x := registry.Expectation{ID: c.id, Device: c.device, ResponseTopic: topic + registry.ReplySuffix, CorrelationData: []byte(c.id), Deadline: c.deadline}
		if m.ResponseTopic != "" {
			x.ResponseTopic, x.CorrelationData = m.ResponseTopic, m.CorrelationData
		}
		if err := d.reg.Expect(x); err != nil {
			d.errs.Add(1)
			d.log.Warn().Err(err).Str("command", c.id).Msg("cannot record the expected answer")
			return st, false
		}
	}
	var err error
	if d.mpub != nil {
		err = d.mpub.PublishMessage(m)
	} else {
		err = d.pub.Publish(topic, m.Payload, 1, false)
	}
	if err != nil {
		d.errs.Add(1)
		d.log.Warn().Err(err).Str("topic", topic).Msg("cannot publish command")
		return st, false
	}
	st.Status, st.Topic = registry.StatusDelivered, topic
	d.log.Debug().Str("topic", topic).Str("command", c.id).Msg("command delivered")
	return st, true
}

// topicFor picks the command's MQTT topic: the record's mqtt.topic header,
// else {fleet}/{device}/cmd with the fleet from the header, the registry
// or the resolver; "" when none is known.
func (d *Downlink) topicFor(c command) string {
	if c.topic != "" {
		return c.topic
	}
	fleet := c.fleet
	if fleet == "" && d.reg != nil {
		if dev, ok := d.reg.Get(c.device); ok {
			fleet = dev.Fleet
		}
	}
	if fleet == "" && d.resolve != nil {
		fleet, _ = d.resolve(c.device)
	}
	if fleet == "" || strings.ContainsAny(fleet, "/+#") || strings.HasPrefix(fleet, "$") {
		return ""
	}
	return fleet + "/" + c.device + "/cmd"
}

// queueLoop delivers or expires the registry's queued commands when a
// device connects or subscribes and every RetryInterval, and writes the
// answers the registry matched.
func (d *Downlink) queueLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.RetryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-d.reg.Answers():
			d.answer(ctx, a)
		case <-d.reg.Wake():
			d.drain(ctx, time.Now())
		case <-t.C:
			now := time.Now()
			d.drain(ctx, now)
			for _, x := range d.reg.Expired(now) {
				d.reg.Forget(x.ID)
			}
		}
	}
}

// drain goes through the queued commands once.
func (d *Downlink) drain(ctx context.Context, now time.Time) {
	for _, q := range d.reg.Pending() {
		if ctx.Err() != nil {
			return
		}
		c := parse(&kgo.Record{Key: []byte(q.Device), Value: q.Payload, Headers: toHeaders(q.Headers), Timestamp: q.Queued}, d.cfg.TTL)
		c.id, c.deadline = q.ID, q.Deadline
		st := status{ID: q.ID, Device: q.Device}
		if !now.Before(q.Deadline) {
			st.Status, st.Reason = registry.StatusExpired, "expired while queued at the edge"
		} else {
			topic := d.topicFor(c)
			if !d.deliverable(q.Device, topic) {
				continue
			}
			var ok bool
			if st, ok = d.publish(st, c, topic, now); !ok {
				continue
			}
		}
		if !d.write(ctx, st) {
			continue // tried again later; a delivered command may go out twice
		}
		if err := d.reg.Dequeue(q.Device, q.ID); err != nil {
			d.log.Warn().Err(err).Str("command", q.ID).Msg("cannot remove a handled command from the queue")
		}
		d.reg.CountCommand(q.Device, registry.StatusQueued, -1)
	}
}

func toHeaders(hs []registry.Header) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, len(hs))
	for i, h := range hs {
		out[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
	}
	return out
}

// answer writes a device's answer as its command's acked status.
func (d *Downlink) answer(ctx context.Context, a registry.Answer) {
	st := status{ID: a.ID, Device: a.Device, Status: registry.StatusAcked, Topic: a.ResponseTopic,
		Client: a.Client, CorrelationData: a.CorrelationData}
	if json.Valid(a.Payload) {
		st.Response = json.RawMessage(a.Payload)
	} else {
		st.ResponseText = string(a.Payload)
	}
	for !d.write(ctx, st) {
		if !sleep(ctx, d.cfg.RetryInterval) {
			return
		}
	}
	d.reg.Forget(a.ID)
}

// status is a status record's value.
type status struct {
	ID              string          `json:"id"`
	Device          string          `json:"device"`
	Status          registry.Status `json:"status"`
	Reason          string          `json:"reason,omitempty"`
	Topic           string          `json:"topic,omitempty"`
	Origin          string          `json:"edge,omitempty"`
	AtMS            int64           `json:"at_ms"`
	Client          string          `json:"client,omitempty"`
	CorrelationData []byte          `json:"correlation_data,omitempty"`
	Response        json.RawMessage `json:"response,omitempty"`
	ResponseText    string          `json:"response_text,omitempty"`
}

// write produces status records and waits for the core's
// acknowledgement; false means not all were written.
func (d *Downlink) write(ctx context.Context, sts ...status) bool {
	recs := make([]*kgo.Record, 0, len(sts))
	now := time.Now()
	for i := range sts {
		st := &sts[i]
		st.Origin, st.AtMS = d.cfg.Origin, now.UnixMilli()
		v, err := json.Marshal(st)
		if err != nil {
			panic(fmt.Sprintf("downlink: a status record does not encode: %v", err))
		}
		hs := []kgo.RecordHeader{
			{Key: HeaderStatus, Value: []byte(st.Status)},
			{Key: HeaderID, Value: []byte(st.ID)},
			{Key: HeaderDevice, Value: []byte(st.Device)},
		}
		if st.CorrelationData != nil {
			hs = append(hs, kgo.RecordHeader{Key: HeaderCorrelationData, Value: st.CorrelationData})
		}
		recs = append(recs, &kgo.Record{Topic: d.cfg.AcksTopic, Key: []byte(st.ID), Value: v, Headers: hs})
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.cl.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		d.errs.Add(1)
		d.log.Warn().Err(err).Str("topic", d.cfg.AcksTopic).Msg("cannot write command status")
		return false
	}
	for _, st := range sts {
		d.count(st)
	}
	return true
}

func (d *Downlink) count(st status) {
	switch st.Status {
	case registry.StatusDelivered:
		d.delivered.Add(1)
	case registry.StatusQueued:
		d.queued.Add(1)
	case registry.StatusAcked:
		d.acked.Add(1)
	case registry.StatusExpired:
		d.expired.Add(1)
	case registry.StatusRejected:
		d.undeliverable.Add(1)
	}
	if d.reg != nil {
		d.reg.CountCommand(st.Device, st.Status, 1)
		d.reg.Track(st.Device, registry.CommandState{ID: st.ID, Status: st.Status, Reason: st.Reason, At: time.UnixMilli(st.AtMS)})
	}
}

// Send produces a command for a device to the commands topic, with the
// downlink's own client (its brokers, TLS and SASL), and waits for the
// core's acknowledgement. The record is keyed by device and carries id in
// the command_id header; expires, when not zero, becomes the expires_ms
// header. Extra headers are added as they are. The command is then handled
// like any other (every edge's downlink sees it).
func (d *Downlink) Send(ctx context.Context, device, id string, value []byte, expires time.Time, headers ...kgo.RecordHeader) error {
	hs := append([]kgo.RecordHeader{{Key: HeaderCommandID, Value: []byte(id)}}, headers...)
	if !expires.IsZero() {
		hs = append(hs, kgo.RecordHeader{Key: HeaderExpiresMS, Value: strconv.AppendInt(nil, expires.UnixMilli(), 10)})
	}
	rec := &kgo.Record{Topic: d.cfg.Topic, Key: []byte(device), Value: value, Headers: hs}
	if err := d.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("downlink: cannot produce command %q: %w", id, err)
	}
	return nil
}

// Stats returns the downlink's counters.
func (d *Downlink) Stats() Stats {
	return Stats{Delivered: d.delivered.Load(), Queued: d.queued.Load(), Acked: d.acked.Load(),
		Expired: d.expired.Load(), Undeliverable: d.undeliverable.Load(), Errors: d.errs.Load()}
}
