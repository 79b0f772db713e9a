package core

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxo-io/fluxo/core/broker"
	"github.com/fluxo-io/fluxo/core/group"
)

// brokerCollector exports topic, partition and consumer group state at
// scrape time, so nothing on the produce and fetch paths touches metrics.
type brokerCollector struct {
	b      *broker.Broker
	groups func() []*group.Coordinator

	topics, partitions, led, underReplicated, isrShrinks, isrExpands *prometheus.Desc
	logEnd, hw, logStart, logBytes                                   *prometheus.Desc
	bytesIn, recordsIn, bytesOut, recordsOut, groupL                 *prometheus.Desc
	quorumLost                                                       *prometheus.Desc

	// The log cleaner (compacted topics).
	dirtyRatio, cleanerRead, cleanerWritten, cleanerRuns, cleanerErrors, cleanerGaveUp, cleanerLast, cleanerLastDur *prometheus.Desc
}

func newBrokerCollector(b *broker.Broker, groups func() []*group.Coordinator) *brokerCollector {
	tp := []string{"topic", "partition"}
	t := []string{"topic"}
	return &brokerCollector{
		b:          b,
		groups:     groups,
		topics:     prometheus.NewDesc("fluxo_core_topics", "Topics on this broker.", nil, nil),
		partitions: prometheus.NewDesc("fluxo_core_partitions", "Partition replicas on this broker.", nil, nil),
		led:        prometheus.NewDesc("fluxo_core_partitions_led", "Partitions this broker leads.", nil, nil),
		underReplicated: prometheus.NewDesc("fluxo_core_under_replicated_partitions",
			"Partitions this broker leads whose ISR is smaller than their replica set.", nil, nil),
		isrShrinks: prometheus.NewDesc("fluxo_core_isr_shrinks_total", "ISR shrinks this broker proposed as leader and the controller accepted.", nil, nil),
		isrExpands: prometheus.NewDesc("fluxo_core_isr_expands_total", "ISR expansions this broker proposed as leader and the controller accepted.", nil, nil),
		logEnd:     prometheus.NewDesc("fluxo_core_log_end_offset", "Log end offset per partition.", tp, nil),
		hw:         prometheus.NewDesc("fluxo_core_high_watermark", "High watermark per partition.", tp, nil),
		logStart:   prometheus.NewDesc("fluxo_core_log_start_offset", "Log start offset per partition.", tp, nil),
		logBytes:   prometheus.NewDesc("fluxo_core_log_bytes", "Bytes in the partition's segments.", tp, nil),
		bytesIn:    prometheus.NewDesc("fluxo_core_bytes_in_total", "Record batch bytes produced to this broker as leader, per topic, since start (replication not counted).", t, nil),
		recordsIn:  prometheus.NewDesc("fluxo_core_records_in_total", "Records appended per topic since start.", t, nil),
		bytesOut:   prometheus.NewDesc("fluxo_core_bytes_out_total", "Record batch bytes served to consumers per topic since start.", t, nil),
		recordsOut: prometheus.NewDesc("fluxo_core_records_out_total", "Records served to consumers per topic since start.", t, nil),
		quorumLost: prometheus.NewDesc("fluxo_broker_quorum_lost",
			"1 while this broker has stepped down as leader for lack of contact with the controller (--leader-lease).", nil, nil),
		dirtyRatio: prometheus.NewDesc("fluxo_core_log_cleaner_dirty_ratio",
			"Share of a compacted partition's sealed bytes not cleaned yet (cleaned at min.cleanable.dirty.ratio).", tp, nil),
		cleanerRead:    prometheus.NewDesc("fluxo_core_log_cleaner_read_bytes_total", "Segment bytes read by the log cleaner.", nil, nil),
		cleanerWritten: prometheus.NewDesc("fluxo_core_log_cleaner_written_bytes_total", "Cleaned segment bytes written by the log cleaner.", nil, nil),
		cleanerRuns:    prometheus.NewDesc("fluxo_core_log_cleaner_runs_total", "Cleanings that rewrote segments.", nil, nil),
		cleanerErrors:  prometheus.NewDesc("fluxo_core_log_cleaner_errors_total", "Cleanings that failed.", nil, nil),
		cleanerGaveUp:  prometheus.NewDesc("fluxo_core_log_cleaner_given_up_total", "Cleanings given up because the log changed under them (retention, truncation); the log is cleaned on a later pass.", nil, nil),
		cleanerLast: prometheus.NewDesc("fluxo_core_log_cleaner_last_run_timestamp_seconds",
			"When the last cleaning that rewrote segments ended (0: none yet).", nil, nil),
		cleanerLastDur: prometheus.NewDesc("fluxo_core_log_cleaner_last_run_seconds", "How long the last cleaning took.", nil, nil),
		groupL:         prometheus.NewDesc("fluxo_core_consumer_group_lag", "High watermark minus the group's committed offset, per partition.", []string{"group", "topic", "partition"}, nil),
	}
}

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.topics, c.partitions, c.logEnd, c.hw, c.logStart, c.logBytes,
		c.bytesIn, c.recordsIn, c.bytesOut, c.recordsOut, c.groupL, c.led, c.underReplicated, c.isrShrinks, c.isrExpands, c.quorumLost,
		c.dirtyRatio, c.cleanerRead, c.cleanerWritten, c.cleanerRuns, c.cleanerErrors, c.cleanerGaveUp, c.cleanerLast, c.cleanerLastDur} {
		ch <- d
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	topics := c.b.Topics()
	n, led, under := 0, 0, 0
	for _, t := range topics {
		var bytesIn int64
		var tc broker.Counters
		for _, p := range t.Partitions {
			if p == nil {
				continue
			}
			n++
			if leads, _ := p.IsLeader(); leads {
				led++
				if ps := t.State.Partitions[p.Index]; len(ps.ISR) < len(ps.Replicas) {
					under++
				}
			}
			l := p.Log()
			st := l.Stats()
			pc := p.Counters()
			bytesIn += pc.BytesIn
			tc.RecordsIn += pc.RecordsIn
			tc.BytesOut += pc.BytesOut
			tc.RecordsOut += pc.RecordsOut
			lv := []string{t.Meta.Name, strconv.Itoa(int(p.Index))}
			ch <- prometheus.MustNewConstMetric(c.logEnd, prometheus.GaugeValue, float64(l.LogEndOffset()), lv...)
			ch <- prometheus.MustNewConstMetric(c.hw, prometheus.GaugeValue, float64(l.HighWatermark()), lv...)
			ch <- prometheus.MustNewConstMetric(c.logStart, prometheus.GaugeValue, float64(l.LogStartOffset()), lv...)
			ch <- prometheus.MustNewConstMetric(c.logBytes, prometheus.GaugeValue, float64(st.Bytes), lv...)
			if l.Compacted() {
				ch <- prometheus.MustNewConstMetric(c.dirtyRatio, prometheus.GaugeValue, l.DirtyRatio(), lv...)
			}
		}
		name := t.Meta.Name
		ch <- prometheus.MustNewConstMetric(c.bytesIn, prometheus.CounterValue, float64(bytesIn), name)
		ch <- prometheus.MustNewConstMetric(c.recordsIn, prometheus.CounterValue, float64(tc.RecordsIn), name)
		ch <- prometheus.MustNewConstMetric(c.bytesOut, prometheus.CounterValue, float64(tc.BytesOut), name)
		ch <- prometheus.MustNewConstMetric(c.recordsOut, prometheus.CounterValue, float64(tc.RecordsOut), name)
	}
	ch <- prometheus.MustNewConstMetric(c.topics, prometheus.GaugeValue, float64(len(topics)))
	ch <- prometheus.MustNewConstMetric(c.partitions, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.led, prometheus.GaugeValue, float64(led))
	ch <- prometheus.MustNewConstMetric(c.underReplicated, prometheus.GaugeValue, float64(under))
	ch <- prometheus.MustNewConstMetric(c.isrShrinks, prometheus.CounterValue, float64(c.b.ISRShrinks()))
	lost := 0.0
	if c.b.QuorumLost() {
		lost = 1
	}
	ch <- prometheus.MustNewConstMetric(c.quorumLost, prometheus.GaugeValue, lost)
	ch <- prometheus.MustNewConstMetric(c.isrExpands, prometheus.CounterValue, float64(c.b.ISRExpands()))
	cs := c.b.CleanerStats()
	ch <- prometheus.MustNewConstMetric(c.cleanerRead, prometheus.CounterValue, float64(cs.BytesRead))
	ch <- prometheus.MustNewConstMetric(c.cleanerWritten, prometheus.CounterValue, float64(cs.BytesWritten))
	ch <- prometheus.MustNewConstMetric(c.cleanerRuns, prometheus.CounterValue, float64(cs.Runs))
	ch <- prometheus.MustNewConstMetric(c.cleanerErrors, prometheus.CounterValue, float64(cs.Errors))
	ch <- prometheus.MustNewConstMetric(c.cleanerGaveUp, prometheus.CounterValue, float64(cs.GaveUp))
	last := 0.0
	if !cs.LastRun.IsZero() {
		last = float64(cs.LastRun.UnixMilli()) / 1000
	}
	ch <- prometheus.MustNewConstMetric(c.cleanerLast, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(c.cleanerLastDur, prometheus.GaugeValue, cs.LastDuration.Seconds())
	for _, gc := range c.groups() {
		c.collectGroups(ch, gc)
	}
}

func (c *brokerCollector) collectGroups(ch chan<- prometheus.Metric, gc *group.Coordinator) {
	for _, g := range gc.Groups() {
		for topic, parts := range gc.Committed(g) {
			for part, off := range parts {
				p, ok := c.b.Partition(topic, part)
				if !ok || off < 0 {
					continue
				}
				lag := max(p.HighWatermark()-off, 0)
				ch <- prometheus.MustNewConstMetric(c.groupL, prometheus.GaugeValue, float64(lag), g, topic, strconv.Itoa(int(part)))
			}
		}
	}
}
