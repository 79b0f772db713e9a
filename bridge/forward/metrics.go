package forward

import "github.com/prometheus/client_golang/prometheus"

// collector exports the spool's, the uplink's and the downlink's state at
// scrape time.
type collector struct{ f *Forwarder }

// Collector returns a Prometheus collector of the forwarder, read at
// scrape time: fluxo_edge_spool_bytes, fluxo_edge_spool_max_bytes,
// fluxo_edge_spool_records, fluxo_edge_messages_total,
// fluxo_edge_uplink_* and, with a downlink,
// fluxo_edge_downlink_commands_total. The names are the edge's, whose
// forwarder came first; a bridge exports the same.
func (f *Forwarder) Collector() prometheus.Collector { return collector{f} }

var (
	descSpoolBytes   = prometheus.NewDesc("fluxo_edge_spool_bytes", "Bytes on disk in the spool, per lane.", []string{"lane"}, nil)
	descSpoolMax     = prometheus.NewDesc("fluxo_edge_spool_max_bytes", "The spool's disk budget (--spool-max-bytes).", nil, nil)
	descSpoolRecords = prometheus.NewDesc("fluxo_edge_spool_records", "Records spooled and not yet delivered, per lane.", []string{"lane"}, nil)
	descMessages     = prometheus.NewDesc("fluxo_edge_messages_total", "Accepted messages by outcome: accepted, delivered, evicted (budget), expired (max age).", []string{"lane", "outcome"}, nil)
	descUpBatches    = prometheus.NewDesc("fluxo_edge_uplink_batches_total", "Batches acknowledged by the core.", []string{"lane"}, nil)
	descUpRecords    = prometheus.NewDesc("fluxo_edge_uplink_records_total", "Records acknowledged by the core.", []string{"lane"}, nil)
	descUpRequests   = prometheus.NewDesc("fluxo_edge_uplink_requests_total", "Produce requests acknowledged by the core (one per partition leader per send).", []string{"lane"}, nil)
	descUpRaw        = prometheus.NewDesc("fluxo_edge_uplink_raw_bytes_total", "Record bytes sent, before compression.", []string{"lane"}, nil)
	descUpSent       = prometheus.NewDesc("fluxo_edge_uplink_sent_bytes_total", "Batch bytes sent, after compression.", []string{"lane"}, nil)
	descUpRatio      = prometheus.NewDesc("fluxo_edge_uplink_compression_ratio", "Raw bytes per byte sent since start.", []string{"lane"}, nil)
	descUpUp         = prometheus.NewDesc("fluxo_edge_uplink_connected", "1 when the lane's last send to the core succeeded.", []string{"lane"}, nil)
	descUpLag        = prometheus.NewDesc("fluxo_edge_uplink_lag_records", "Records accepted and not yet acknowledged by the core.", []string{"lane"}, nil)
	descUpRetries    = prometheus.NewDesc("fluxo_edge_uplink_retries_total", "Failed sends, retried.", []string{"lane"}, nil)
	descUpParked     = prometheus.NewDesc("fluxo_edge_uplink_parked", "1 while the lane is parked on a permanent error (reason: the Kafka error code), probing until it is fixed; 0 with reason none otherwise.", []string{"lane", "reason"}, nil)
	descUpLastAck    = prometheus.NewDesc("fluxo_edge_uplink_last_ack_timestamp_seconds", "When the core last acknowledged a batch.", []string{"lane"}, nil)
	descUpLatency    = prometheus.NewDesc("fluxo_edge_uplink_latency_seconds", "Per record, from the edge receiving it to the core acknowledging it (alarms: the device-to-core latency but for the device's own hop).", []string{"lane"}, nil)
	descDown         = prometheus.NewDesc("fluxo_edge_downlink_commands_total", "Commands from the core by outcome: delivered, undeliverable.", []string{"outcome"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSpoolBytes, descSpoolMax, descSpoolRecords, descMessages, descUpBatches, descUpRecords,
		descUpRequests, descUpRaw, descUpSent, descUpRatio, descUpUp, descUpLag, descUpRetries, descUpParked, descUpLastAck, descUpLatency, descDown} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(descSpoolMax, gauge, float64(c.f.spool.MaxBytes()))
	for _, s := range c.f.spool.Stats() {
		l := s.Lane.String()
		ch <- prometheus.MustNewConstMetric(descSpoolBytes, gauge, float64(s.Bytes), l)
		ch <- prometheus.MustNewConstMetric(descSpoolRecords, gauge, float64(s.Spool), l)
		for _, o := range []struct {
			name string
			v    int64
		}{{"accepted", s.Accepted}, {"delivered", s.Delivered}, {"evicted", s.Evicted}, {"expired", s.Expired}} {
			ch <- prometheus.MustNewConstMetric(descMessages, counter, float64(o.v), l, o.name)
		}
	}
	for _, s := range c.f.uplink.Stats() {
		l := s.Lane.String()
		up := 0.0
		if s.Connected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUpBatches, counter, float64(s.Batches), l)
		ch <- prometheus.MustNewConstMetric(descUpRecords, counter, float64(s.Records), l)
		ch <- prometheus.MustNewConstMetric(descUpRequests, counter, float64(s.Requests), l)
		ch <- prometheus.MustNewConstMetric(descUpRaw, counter, float64(s.RawBytes), l)
		ch <- prometheus.MustNewConstMetric(descUpSent, counter, float64(s.SentBytes), l)
		ch <- prometheus.MustNewConstMetric(descUpRatio, gauge, s.CompressionRatio(), l)
		ch <- prometheus.MustNewConstMetric(descUpUp, gauge, up, l)
		ch <- prometheus.MustNewConstMetric(descUpLag, gauge, float64(s.Backlog), l)
		ch <- prometheus.MustNewConstMetric(descUpRetries, counter, float64(s.Retries), l)
		if s.Parked {
			ch <- prometheus.MustNewConstMetric(descUpParked, gauge, 1, l, s.ParkReason)
		} else {
			ch <- prometheus.MustNewConstMetric(descUpParked, gauge, 0, l, "none")
		}
		if !s.LastAck.IsZero() {
			ch <- prometheus.MustNewConstMetric(descUpLastAck, gauge, float64(s.LastAck.UnixMilli())/1000, l)
		}
		ch <- prometheus.MustNewConstHistogram(descUpLatency, s.Latency.Count, s.Latency.Sum, s.Latency.Buckets, l)
	}
	if c.f.down != nil {
		d := c.f.down.Stats()
		ch <- prometheus.MustNewConstMetric(descDown, counter, float64(d.Delivered), "delivered")
		ch <- prometheus.MustNewConstMetric(descDown, counter, float64(d.Undeliverable), "undeliverable")
	}
}
