package core

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxo-io/fluxo/core/broker"
)

// brokerCollector exports per-partition state at scrape time.
type brokerCollector struct {
	b                          *broker.Broker
	partitions, logEnd, hw     *prometheus.Desc
	logStart, logBytes, topics *prometheus.Desc
	appendedBytes, appends     *prometheus.Desc
}

func newBrokerCollector(b *broker.Broker) *brokerCollector {
	lbl := []string{"topic", "partition"}
	return &brokerCollector{
		b:             b,
		topics:        prometheus.NewDesc("fluxo_core_topics", "Topics on this broker.", nil, nil),
		partitions:    prometheus.NewDesc("fluxo_core_partitions", "Partitions on this broker.", nil, nil),
		logEnd:        prometheus.NewDesc("fluxo_core_log_end_offset", "Log end offset per partition.", lbl, nil),
		hw:            prometheus.NewDesc("fluxo_core_high_watermark", "High watermark per partition.", lbl, nil),
		logStart:      prometheus.NewDesc("fluxo_core_log_start_offset", "Log start offset per partition.", lbl, nil),
		logBytes:      prometheus.NewDesc("fluxo_core_log_bytes", "Bytes in the partition's segments.", lbl, nil),
		appendedBytes: prometheus.NewDesc("fluxo_core_bytes_in_total", "Record batch bytes appended per partition since start.", lbl, nil),
		appends:       prometheus.NewDesc("fluxo_core_appends_total", "Appends per partition since start.", lbl, nil),
	}
}

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.topics, c.partitions, c.logEnd, c.hw, c.logStart, c.logBytes, c.appendedBytes, c.appends} {
		ch <- d
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	topics := c.b.Topics()
	n := 0
	for _, t := range topics {
		for _, p := range t.Partitions {
			n++
			l := p.Log()
			st := l.Stats()
			lv := []string{t.Meta.Name, strconv.Itoa(int(p.Index))}
			ch <- prometheus.MustNewConstMetric(c.logEnd, prometheus.GaugeValue, float64(l.LogEndOffset()), lv...)
			ch <- prometheus.MustNewConstMetric(c.hw, prometheus.GaugeValue, float64(l.HighWatermark()), lv...)
			ch <- prometheus.MustNewConstMetric(c.logStart, prometheus.GaugeValue, float64(l.LogStartOffset()), lv...)
			ch <- prometheus.MustNewConstMetric(c.logBytes, prometheus.GaugeValue, float64(st.Bytes), lv...)
			ch <- prometheus.MustNewConstMetric(c.appendedBytes, prometheus.CounterValue, float64(st.AppendedBytes), lv...)
			ch <- prometheus.MustNewConstMetric(c.appends, prometheus.CounterValue, float64(st.Appends), lv...)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.topics, prometheus.GaugeValue, float64(len(topics)))
	ch <- prometheus.MustNewConstMetric(c.partitions, prometheus.GaugeValue, float64(n))
}
