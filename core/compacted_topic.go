package core

import (
	"context"
	"maps"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/core/broker"
)

// makeCompacted turns compaction on for an internal topic (the offsets
// or the transaction topic) created by a version that did not compact
// it: configs are the topic's, want the configs it is created with now.
// The topic's other settings are kept unless unset. Best effort: a
// failure is logged and tried again at the next FindCoordinator; done is
// set once the topic is known to be compacted.
func makeCompacted(ctx context.Context, b *broker.Broker, log zerolog.Logger, topic string, configs, want map[string]string, done *atomic.Bool) {
	if configs["cleanup.policy"] == "compact" {
		done.Store(true)
		return
	}
	merged := maps.Clone(configs)
	if merged == nil {
		merged = map[string]string{}
	}
	for k, v := range want {
		if _, set := merged[k]; !set || k == "cleanup.policy" {
			merged[k] = v
		}
	}
	if err := b.SetTopicConfigs(ctx, topic, merged); err != nil {
		log.Warn().Err(err).Str("topic", topic).Msg("cannot make the topic compacted")
		return
	}
	done.Store(true)
	log.Info().Str("topic", topic).Msg("topic is now compacted")
}
