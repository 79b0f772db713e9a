// Package downlink delivers commands from the core to devices: records on
// the core topic "commands", keyed by device id, are published over MQTT
// (QoS 1) to the device's command topic, including to devices offline at
// the time whose persistent session will receive it when they reconnect.
// A device's answer, published on {fleet}/{device}/cmd/reply, goes back to
// the core through the edge's ordinary routing (to "command-acks").
//
// Delivery is at-least-once: a command's offset is committed only after it
// was handed to the MQTT server; after an edge crash, uncommitted commands
// are published again (MQTT QoS 1 is at-least-once as well, so devices
// tolerate repeats — commands carry an id for that).
package downlink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/fluxo-io/fluxo/internal/logadapt"
)

// Publisher hands a message to the MQTT server (the edge's inline client).
type Publisher interface {
	Publish(topic string, payload []byte, qos byte, retain bool) error
}

// Resolver returns the fleet a device belongs to, if known (the edge
// learns it from the topics the device publishes and subscribes to).
type Resolver func(device string) (fleet string, ok bool)

// Headers a command record may carry to choose its MQTT topic.
const (
	// HeaderTopic names the exact MQTT topic to publish the command on.
	HeaderTopic = "mqtt.topic"
	// HeaderFleet names the device's fleet: the command goes to
	// {fleet}/{device}/cmd.
	HeaderFleet = "fleet"
)

// Config configures the downlink.
type Config struct {
	Brokers  []string
	Topic    string // core topic with commands (default "commands")
	Group    string // consumer group; one per edge, so every edge sees every command
	ClientID string
	// TLS, when set, encrypts the connections to the brokers (and
	// presents a client certificate if it has one). Nil: plaintext.
	TLS *tls.Config
	// SASL, when set, authenticates each connection (PLAIN, SCRAM).
	// Nil: no SASL.
	SASL sasl.Mechanism
	// Logger receives downlink events. Zero value: no logs.
	Logger zerolog.Logger
}

// DefaultConfig consumes "commands" from a core on 127.0.0.1:9092.
func DefaultConfig() Config {
	return Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "commands", Group: "fluxo-edge-downlink", ClientID: "fluxo-edge-downlink", Logger: zerolog.Nop()}
}

// Stats counts the downlink's work.
type Stats struct {
	Delivered     int64 // commands handed to the MQTT server
	Undeliverable int64 // no topic could be found for the device
	Errors        int64 // publish failures (retried)
}

// Downlink consumes commands and publishes them to devices.
type Downlink struct {
	cfg     Config
	log     zerolog.Logger
	pub     Publisher
	resolve Resolver
	cl      *kgo.Client

	delivered, undeliverable, errs atomic.Int64
}

// New connects a consumer group member; Run consumes.
func New(cfg Config, pub Publisher, resolve Resolver) (*Downlink, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" || cfg.Group == "" {
		return nil, errors.New("downlink: brokers, topic and group are required")
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
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
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
	return &Downlink{cfg: cfg, log: cfg.Logger, pub: pub, resolve: resolve, cl: cl}, nil
}

// Run delivers commands until ctx ends, then commits and leaves the group.
// Failures do not end it: fetch and commit errors are logged (franz-go
// retries them), a failed publish is retried.
func (d *Downlink) Run(ctx context.Context) {
	defer d.cl.Close()
	for {
		fs := d.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			d.log.Warn().Err(err).Str("topic", t).Int32("partition", p).Msg("commands fetch failed")
		})
		var done []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			for !d.deliver(r) {
				// Retry a failed publish until it works or we stop.
				select {
				case <-ctx.Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
			done = append(done, r)
		})
		if len(done) > 0 {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := d.cl.CommitRecords(cctx, done...); err != nil {
				d.log.Warn().Err(err).Msg("cannot commit delivered commands")
			}
			cancel()
		}
	}
}

// deliver publishes one command; false means retry.
func (d *Downlink) deliver(r *kgo.Record) bool {
	topic, ok := d.topicFor(r)
	if !ok {
		d.undeliverable.Add(1)
		d.log.Warn().Str("device", string(r.Key)).Int64("offset", r.Offset).Msg("no MQTT topic for command: unknown device fleet")
		return true
	}
	if err := d.pub.Publish(topic, r.Value, 1, false); err != nil {
		d.errs.Add(1)
		d.log.Warn().Err(err).Str("topic", topic).Msg("cannot publish command")
		return false
	}
	d.delivered.Add(1)
	d.log.Debug().Str("topic", topic).Int64("offset", r.Offset).Msg("command delivered")
	return true
}

// topicFor picks the command's MQTT topic: the record's mqtt.topic header,
// else {fleet}/{device}/cmd with the fleet from the header or the resolver.
func (d *Downlink) topicFor(r *kgo.Record) (string, bool) {
	var fleet string
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderTopic:
			if t := string(h.Value); t != "" && !strings.ContainsAny(t, "+#") {
				return t, true
			}
		case HeaderFleet:
			fleet = string(h.Value)
		}
	}
	dev := string(r.Key)
	if dev == "" || strings.ContainsAny(dev, "/+#") {
		return "", false
	}
	if fleet == "" && d.resolve != nil {
		fleet, _ = d.resolve(dev)
	}
	if fleet == "" || strings.ContainsAny(fleet, "/+#") {
		return "", false
	}
	return fmt.Sprintf("%s/%s/cmd", fleet, dev), true
}

// Stats returns the downlink's counters.
func (d *Downlink) Stats() Stats {
	return Stats{Delivered: d.delivered.Load(), Undeliverable: d.undeliverable.Load(), Errors: d.errs.Load()}
}
