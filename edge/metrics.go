package edge

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Denial reasons, the values of the reason label of
// fluxo_edge_denials_total.
const (
	denyCredentials = "credentials" // unknown user or wrong password
	denyAnonymous   = "anonymous"   // no username, anonymous access off
	denyCertificate = "certificate" // a client certificate whose identity is no user, or not the CONNECT's username
	denyWill        = "will"        // will topic not allowed for the user
	denyPublish     = "publish"     // publish ACL
	denySubscribe   = "subscribe"   // subscribe ACL
)

// Refusal reasons, the values of the reason label of
// fluxo_edge_connections_refused_total.
const (
	refuseRate       = "rate"        // Config.MaxConnectRate
	refuseMaxClients = "max_clients" // Config.MaxClients
)

// metrics are the edge's Prometheus collectors. They always exist (so the
// code counts unconditionally) and are registered only when a Registerer
// is configured.
type metrics struct {
	publishes     [3]prometheus.Counter // by QoS
	spoolFailures [3]prometheus.Counter // by QoS
	denials       *prometheus.CounterVec
	unrouted      prometheus.Counter
	// headerRefusals counts publishes past Config.MaxHeaders or
	// Config.MaxHeaderBytes.
	headerRefusals prometheus.Counter
	// connRefusals counts connections refused by Config.MaxConnectRate
	// and Config.MaxClients, by reason.
	connRefusals *prometheus.CounterVec
	// writesDropped counts messages to clients dropped on a full write
	// queue (Config.MaxWritesPending).
	writesDropped prometheus.Counter

	reg        prometheus.Registerer
	collectors []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer, clients, bytesIn func() float64) (*metrics, error) {
	pub := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fluxo_edge_publishes_total",
		Help: "MQTT publishes received from devices that passed the ACL check, by QoS.",
	}, []string{"qos"})
	fail := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fluxo_edge_spool_failures_total",
		Help: "Publishes (and wills) the spool refused, by QoS: QoS 0 dropped, QoS 1/2 refused to the device.",
	}, []string{"qos"})
	m := &metrics{
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxo_edge_denials_total",
			Help: "Connections, publishes and subscriptions refused by authentication or ACL, by reason.",
		}, []string{"reason"}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fluxo_edge_unrouted_total",
			Help: "Publishes refused because no route matched their topic.",
		}),
		headerRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fluxo_edge_header_refusals_total",
			Help: "Publishes refused because their record would have more headers, or more header bytes, than the edge allows.",
		}),
		connRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxo_edge_connections_refused_total",
			Help: "MQTT connections refused because the edge was busy, by reason: rate (--max-connect-rate) or max_clients (--max-clients).",
		}, []string{"reason"}),
		writesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fluxo_edge_writes_dropped_total",
			Help: "QoS 0 messages to MQTT clients dropped because the client's write queue (--max-writes-pending) was full.",
		}),
		reg: reg,
	}
	for q := range 3 {
		m.publishes[q] = pub.WithLabelValues(strconv.Itoa(q))
		m.spoolFailures[q] = fail.WithLabelValues(strconv.Itoa(q))
	}
	for _, r := range []string{denyCredentials, denyAnonymous, denyCertificate, denyWill, denyPublish, denySubscribe} {
		m.denials.WithLabelValues(r)
	}
	for _, r := range []string{refuseRate, refuseMaxClients} {
		m.connRefusals.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	m.collectors = []prometheus.Collector{
		pub, fail, m.denials, m.unrouted, m.headerRefusals, m.connRefusals, m.writesDropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fluxo_edge_clients_connected",
			Help: "MQTT clients connected now.",
		}, clients),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fluxo_edge_bytes_received_total",
			Help: "Bytes of MQTT packets read from clients, all listeners.",
		}, bytesIn),
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, c := range m.collectors[:i] {
				reg.Unregister(c)
			}
			return nil, err
		}
	}
	return m, nil
}

// unregister removes the collectors from the registerer.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

func qosIndex(q byte) int {
	if q > 2 {
		return 2
	}
	return int(q)
}
