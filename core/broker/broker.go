package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
)

// Config configures a Broker.
type Config struct {
	// DataDir holds the metadata file and one directory per partition,
	// named <topic>-<partition> as Kafka names them.
	DataDir string
	// NodeID is this broker's id.
	NodeID int32
	// AutoCreateTopics creates unknown topics on first produce or metadata
	// request (Kafka's auto.create.topics.enable).
	AutoCreateTopics bool
	// DefaultPartitions is the partition count of auto-created topics and
	// of CreateTopics requests that leave it to the broker (num.partitions).
	DefaultPartitions int32
	// Log is the default configuration of partition logs; topic configs
	// (retention.ms, retention.bytes, segment.bytes, ...) override it.
	Log commitlog.Config
	// MaintainInterval is how often retention and idle unmapping run.
	MaintainInterval time.Duration
	// Logger receives broker events. Zero value: no logs.
	Logger zerolog.Logger
}

// DefaultConfig returns a single-node configuration with Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:           "data",
		AutoCreateTopics:  true,
		DefaultPartitions: 1,
		Log:               commitlog.DefaultConfig(),
		MaintainInterval:  10 * time.Second,
		Logger:            zerolog.Nop(),
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("broker: DataDir is empty")
	case c.DefaultPartitions < 1:
		return fmt.Errorf("broker: DefaultPartitions %d must be at least 1", c.DefaultPartitions)
	case c.MaintainInterval <= 0:
		return fmt.Errorf("broker: MaintainInterval %v must be positive", c.MaintainInterval)
	}
	return c.Log.Validate()
}

// Topic is a topic and its partitions on this broker.
type Topic struct {
	Meta       TopicMeta
	Partitions []*Partition
}

// Broker owns the topics and partitions of one node.
type Broker struct {
	cfg  Config
	log  zerolog.Logger
	meta Metadata

	mu     sync.RWMutex // guards topics
	topics map[string]*Topic

	pidMu   sync.Mutex // guards the producer id block
	pidNext int64
	pidEnd  int64

	quit chan struct{}
	wg   sync.WaitGroup
}

// Open loads the metadata and opens every partition's log.
func Open(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	meta, err := openFileMetadata(filepath.Join(cfg.DataDir, "metadata.json"))
	if err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, meta: meta, topics: map[string]*Topic{}, quit: make(chan struct{})}
	for _, tm := range meta.Topics() {
		t, err := b.openTopic(tm)
		if err != nil {
			b.closeTopics()
			return nil, err
		}
		b.topics[tm.Name] = t
	}
	b.wg.Add(1)
	go b.maintain()
	return b, nil
}

func (b *Broker) partitionDir(topic string, p int32) string {
	return filepath.Join(b.cfg.DataDir, topic+"-"+strconv.Itoa(int(p)))
}

// logConfig applies a topic's configs to the broker's log defaults.
func (b *Broker) logConfig(configs map[string]string) (commitlog.Config, error) {
	c := b.cfg.Log
	for k, v := range configs {
		if err := applyTopicConfig(&c, k, v); err != nil {
			return c, err
		}
	}
	return c, c.Validate()
}

func (b *Broker) openTopic(tm TopicMeta) (*Topic, error) {
	cfg, err := b.logConfig(tm.Configs)
	if err != nil {
		return nil, fmt.Errorf("broker: topic %s: %w", tm.Name, err)
	}
	t := &Topic{Meta: tm}
	for i := int32(0); i < tm.Partitions; i++ {
		p, err := openPartition(tm.Name, i, b.partitionDir(tm.Name, i), cfg, b.log)
		if err != nil {
			for _, p := range t.Partitions {
				p.close()
			}
			return nil, fmt.Errorf("broker: topic %s partition %d: %w", tm.Name, i, err)
		}
		t.Partitions = append(t.Partitions, p)
	}
	return t, nil
}

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ValidateTopicName applies Kafka's topic name rules.
func ValidateTopicName(name string) error {
	if !topicName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf(`broker: invalid topic name %q: want 1-249 of [a-zA-Z0-9._-] and neither "." nor ".."`, name)
	}
	return nil
}

// Topic returns the topic named name.
func (b *Broker) Topic(name string) (*Topic, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.topics[name]
	return t, ok
}

// Topics returns every topic, sorted by name.
func (b *Broker) Topics() []*Topic {
	b.mu.RLock()
	out := make([]*Topic, 0, len(b.topics))
	for _, t := range b.topics {
		out = append(out, t)
	}
	b.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Meta.Name < out[j].Meta.Name })
	return out
}

// Partition returns partition p of topic, if both exist.
func (b *Broker) Partition(topic string, p int32) (*Partition, bool) {
	t, ok := b.Topic(topic)
	if !ok || p < 0 || int(p) >= len(t.Partitions) {
		return nil, false
	}
	return t.Partitions[p], true
}

// AutoCreate reports whether unknown topics are created on first use.
func (b *Broker) AutoCreate() bool { return b.cfg.AutoCreateTopics }

// NodeID is this broker's id.
func (b *Broker) NodeID() int32 { return b.cfg.NodeID }

// CreateTopic creates a topic with partitions partitions (0 or less: the
// default) and the given configs.
func (b *Broker) CreateTopic(name string, partitions int32, configs map[string]string) (*Topic, error) {
	if err := ValidateTopicName(name); err != nil {
		return nil, err
	}
	if partitions <= 0 {
		partitions = b.cfg.DefaultPartitions
	}
	if _, err := b.logConfig(configs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.topics[name]; ok {
		return nil, ErrTopicExists
	}
	tm := TopicMeta{Name: name, Partitions: partitions, Configs: configs}
	if err := b.meta.CreateTopic(tm); err != nil {
		return nil, err
	}
	for _, m := range b.meta.Topics() {
		if m.Name == name {
			tm = m
		}
	}
	t, err := b.openTopic(tm)
	if err != nil {
		b.meta.DeleteTopic(name)
		return nil, err
	}
	b.topics[name] = t
	b.log.Info().Str("topic", name).Int32("partitions", partitions).Msg("created topic")
	return t, nil
}

// ErrInvalidConfig marks a topic config the broker does not accept.
var ErrInvalidConfig = errors.New("broker: invalid topic config")

// EnsureTopic returns the topic, creating it with the defaults when
// auto-creation is on.
func (b *Broker) EnsureTopic(name string) (*Topic, error) {
	if t, ok := b.Topic(name); ok {
		return t, nil
	}
	if !b.cfg.AutoCreateTopics {
		return nil, ErrUnknownTopic
	}
	t, err := b.CreateTopic(name, 0, nil)
	if errors.Is(err, ErrTopicExists) {
		if t, ok := b.Topic(name); ok {
			return t, nil
		}
	}
	return t, err
}

// DeleteTopic removes a topic and its data.
func (b *Broker) DeleteTopic(name string) error {
	b.mu.Lock()
	t, ok := b.topics[name]
	if !ok {
		b.mu.Unlock()
		return ErrUnknownTopic
	}
	if err := b.meta.DeleteTopic(name); err != nil {
		b.mu.Unlock()
		return err
	}
	delete(b.topics, name)
	b.mu.Unlock()
	for _, p := range t.Partitions {
		p.close()
		if err := os.RemoveAll(b.partitionDir(name, p.Index)); err != nil {
			b.log.Error().Err(err).Str("topic", name).Int32("partition", p.Index).Msg("cannot remove partition data")
		}
	}
	b.log.Info().Str("topic", name).Msg("deleted topic")
	return nil
}

// InitProducerID hands out a new idempotent producer id (epoch 0). Ids are
// reserved from the metadata in blocks, so a restart never reuses one.
func (b *Broker) InitProducerID() (int64, int16, error) {
	b.pidMu.Lock()
	defer b.pidMu.Unlock()
	if b.pidNext == b.pidEnd {
		const block = 1000
		first, err := b.meta.AllocateProducerIDs(block)
		if err != nil {
			return 0, 0, err
		}
		b.pidNext, b.pidEnd = first, first+block
	}
	id := b.pidNext
	b.pidNext++
	return id, 0, nil
}

func (b *Broker) maintain() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.MaintainInterval)
	defer t.Stop()
	for {
		select {
		case <-b.quit:
			return
		case now := <-t.C:
			for _, tp := range b.Topics() {
				for _, p := range tp.Partitions {
					if err := p.log.Maintain(now); err != nil && !errors.Is(err, commitlog.ErrClosed) {
						b.log.Error().Err(err).Str("topic", p.Topic).Int32("partition", p.Index).Msg("maintenance failed")
					}
				}
			}
		}
	}
}

func (b *Broker) closeTopics() error {
	var first error
	for _, t := range b.topics {
		for _, p := range t.Partitions {
			if err := p.close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// Close stops maintenance and closes every log, flushing it.
func (b *Broker) Close() error {
	close(b.quit)
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closeTopics()
}

// ValidateTopicConfigs checks topic configs without creating anything.
func (b *Broker) ValidateTopicConfigs(configs map[string]string) error {
	_, err := b.logConfig(configs)
	return err
}

// InternalLog is a log the broker keeps for itself, outside the topic
// list: the consumer group coordinator's commits. Appends are fsynced
// before they return.
type InternalLog struct {
	log *commitlog.Log
	mu  sync.Mutex // serializes appends with their watermark moves
}

// OpenInternalLog opens (or creates) the internal log name under the data
// directory.
func (b *Broker) OpenInternalLog(name string) (*InternalLog, error) {
	cfg := b.cfg.Log
	cfg.FlushBatches = 1
	cfg.SegmentBytes = min(cfg.SegmentBytes, 64<<20)
	cfg.MaxBatchBytes = min(cfg.MaxBatchBytes, int(cfg.SegmentBytes))
	cfg.Logger = b.log.With().Str("log", name).Logger()
	l, err := commitlog.Open(filepath.Join(b.cfg.DataDir, name), cfg)
	if err != nil {
		return nil, err
	}
	return &InternalLog{log: l}, nil
}

// Append writes key/value records (a nil value is a tombstone) as one
// batch and returns once it is durable.
func (il *InternalLog) Append(recs []InternalRecord) error {
	krecs := make([]kmsg.Record, len(recs))
	for i, r := range recs {
		krecs[i] = kmsg.Record{Key: r.Key, Value: r.Value}
	}
	il.mu.Lock()
	defer il.mu.Unlock()
	res, err := il.log.Append(commitlog.AppendBatch(nil, commitlog.NoProducer(time.Now().UnixMilli()), krecs))
	if err != nil {
		return err
	}
	il.log.SetHighWatermark(res.LastOffset + 1)
	return nil
}

// InternalRecord is one key/value of an internal log.
type InternalRecord struct{ Key, Value []byte }

// Replay calls fn for every record in order.
func (il *InternalLog) Replay(fn func(key, value []byte) error) error {
	for off := il.log.LogStartOffset(); off < il.log.HighWatermark(); {
		v, err := il.log.Read(off, 4<<20)
		if err != nil {
			return err
		}
		if len(v.Data) == 0 {
			v.Release()
			return nil
		}
		var ferr error
		err = commitlog.Batches(v.Data, func(b commitlog.Batch, raw []byte) bool {
			rerr := commitlog.Records(b, raw, func(_, _ int64, r *kmsg.Record) bool {
				ferr = fn(r.Key, r.Value)
				return ferr == nil
			})
			if ferr == nil {
				ferr = rerr
			}
			return ferr == nil
		})
		off = v.Next
		v.Release()
		if err != nil {
			return err
		}
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// Close flushes and closes the log.
func (il *InternalLog) Close() error { return il.log.Close() }

// SetTopicConfigs replaces a topic's configs and applies them to its
// partitions' logs at once.
func (b *Broker) SetTopicConfigs(name string, configs map[string]string) error {
	cfg, err := b.logConfig(configs)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[name]
	if !ok {
		return ErrUnknownTopic
	}
	if err := b.meta.SetConfigs(name, configs); err != nil {
		return err
	}
	nt := &Topic{Meta: t.Meta, Partitions: t.Partitions}
	nt.Meta.Configs = configs
	b.topics[name] = nt
	for _, p := range t.Partitions {
		if err := p.log.Reconfigure(cfg); err != nil {
			return err
		}
	}
	b.log.Info().Str("topic", name).Interface("configs", configs).Msg("topic configs changed")
	return nil
}

// TopicConfigValue is a topic config's effective value and whether the
// topic sets it (false: the broker default).
type TopicConfigValue struct {
	Name, Value string
	Set         bool
}

// DescribeTopicConfigs returns every topic config the broker understands,
// with its effective value for the topic.
func (b *Broker) DescribeTopicConfigs(name string) ([]TopicConfigValue, error) {
	t, ok := b.Topic(name)
	if !ok {
		return nil, ErrUnknownTopic
	}
	d := b.cfg.Log
	defaults := map[string]string{
		"cleanup.policy":    "delete",
		"retention.ms":      strconv.FormatInt(durationMs(d.RetentionAge), 10),
		"retention.bytes":   strconv.FormatInt(d.RetentionBytes, 10),
		"segment.bytes":     strconv.FormatInt(d.SegmentBytes, 10),
		"segment.ms":        strconv.FormatInt(durationMs(d.SegmentMaxAge), 10),
		"max.message.bytes": strconv.Itoa(d.MaxBatchBytes),
		"flush.messages":    strconv.Itoa(d.FlushBatches),
		"flush.ms":          strconv.FormatInt(durationMs(d.FlushInterval), 10),
	}
	if d.FlushBatches == 0 {
		defaults["flush.messages"] = "9223372036854775807"
	}
	if d.FlushInterval == 0 {
		defaults["flush.ms"] = "9223372036854775807"
	}
	out := make([]TopicConfigValue, 0, len(TopicConfigs))
	for _, k := range TopicConfigs {
		v, set := t.Meta.Configs[k]
		if !set {
			v = defaults[k]
		}
		out = append(out, TopicConfigValue{Name: k, Value: v, Set: set})
	}
	return out, nil
}

func durationMs(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

// CreatePartitions grows a topic to total partitions.
func (b *Broker) CreatePartitions(name string, total int32, validateOnly bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[name]
	if !ok {
		return ErrUnknownTopic
	}
	if total <= int32(len(t.Partitions)) {
		return fmt.Errorf("%w: topic %s has %d partitions, cannot go to %d", ErrInvalidPartitions, name, len(t.Partitions), total)
	}
	if validateOnly {
		return nil
	}
	cfg, err := b.logConfig(t.Meta.Configs)
	if err != nil {
		return err
	}
	nt := &Topic{Meta: t.Meta, Partitions: append([]*Partition(nil), t.Partitions...)}
	for i := int32(len(t.Partitions)); i < total; i++ {
		p, err := openPartition(name, i, b.partitionDir(name, i), cfg, b.log)
		if err != nil {
			for _, q := range nt.Partitions[len(t.Partitions):] {
				q.close()
			}
			return err
		}
		nt.Partitions = append(nt.Partitions, p)
	}
	if err := b.meta.SetPartitions(name, total); err != nil {
		for _, q := range nt.Partitions[len(t.Partitions):] {
			q.close()
		}
		return err
	}
	nt.Meta.Partitions = total
	b.topics[name] = nt
	b.log.Info().Str("topic", name).Int32("partitions", total).Msg("added partitions")
	return nil
}

// ErrInvalidPartitions marks a partition count the broker refuses.
var ErrInvalidPartitions = errors.New("broker: invalid partition count")

// BrokerConfigs lists the broker's main settings as Kafka names them.
func (b *Broker) BrokerConfigs() [][2]string {
	d := b.cfg.Log
	return [][2]string{
		{"broker.id", strconv.Itoa(int(b.cfg.NodeID))},
		{"auto.create.topics.enable", strconv.FormatBool(b.cfg.AutoCreateTopics)},
		{"num.partitions", strconv.Itoa(int(b.cfg.DefaultPartitions))},
		{"log.retention.ms", strconv.FormatInt(durationMs(d.RetentionAge), 10)},
		{"log.retention.bytes", strconv.FormatInt(d.RetentionBytes, 10)},
		{"log.segment.bytes", strconv.FormatInt(d.SegmentBytes, 10)},
		{"message.max.bytes", strconv.Itoa(d.MaxBatchBytes)},
		{"log.dirs", b.cfg.DataDir},
	}
}
