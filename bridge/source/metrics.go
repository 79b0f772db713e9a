package source

import "github.com/prometheus/client_golang/prometheus"

var (
	descReceived    = prometheus.NewDesc("fluxo_bridge_received_total", "Messages delivered by the source broker, redeliveries included.", nil, nil)
	descRedelivered = prometheus.NewDesc("fluxo_bridge_redelivered_total", "Messages delivered again by the source broker (DUP flag).", nil, nil)
	descSpooled     = prometheus.NewDesc("fluxo_bridge_spooled_total", "Messages appended to the spool and acknowledged to the source broker.", nil, nil)
	descUnrouted    = prometheus.NewDesc("fluxo_bridge_unrouted_total", "Messages no route matched: acknowledged and dropped.", nil, nil)
	descFailed      = prometheus.NewDesc("fluxo_bridge_spool_failures_total", "Messages the spool refused: not acknowledged, left for redelivery.", nil, nil)
	descDiscarded   = prometheus.NewDesc("fluxo_bridge_discarded_total", "Messages dropped unacknowledged because their connection had ended; the broker delivers them again.", nil, nil)
	descReconnects  = prometheus.NewDesc("fluxo_bridge_reconnects_total", "Connections to the source broker after the first.", nil, nil)
	descConnected   = prometheus.NewDesc("fluxo_bridge_source_connected", "1 while connected and subscribed to the source broker.", nil, nil)
)

// collector exports a Subscriber's Stats at scrape time.
type collector struct{ s *Subscriber }

// Collector returns a Prometheus collector of the subscriber's Stats:
// fluxo_bridge_received_total, fluxo_bridge_redelivered_total,
// fluxo_bridge_spooled_total, fluxo_bridge_unrouted_total,
// fluxo_bridge_spool_failures_total, fluxo_bridge_discarded_total,
// fluxo_bridge_reconnects_total and fluxo_bridge_source_connected.
func (s *Subscriber) Collector() prometheus.Collector { return collector{s} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReceived, descRedelivered, descSpooled, descUnrouted, descFailed, descDiscarded, descReconnects, descConnected} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := prometheus.CounterValue
	for _, m := range []struct {
		d *prometheus.Desc
		v int64
	}{
		{descReceived, st.Received}, {descRedelivered, st.Redelivered}, {descSpooled, st.Spooled},
		{descUnrouted, st.Unrouted}, {descFailed, st.Failed}, {descDiscarded, st.Discarded},
		{descReconnects, st.Reconnects},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, counter, float64(m.v))
	}
	up := 0.0
	if st.Connected {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, up)
}
