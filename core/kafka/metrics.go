package kafka

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus collectors. They always exist, so
// the code that updates them has no nil checks; they are registered only
// when Config.Registerer is set.
type metrics struct {
	requests             *prometheus.CounterVec   // by api
	duration             *prometheus.HistogramVec // by api
	connections          prometheus.Gauge
	connectionsRejected  prometheus.Counter
	requestErrors        *prometheus.CounterVec   // by reason
	authSuccesses        *prometheus.CounterVec   // by listener, mechanism
	authFailures         *prometheus.CounterVec   // by listener, mechanism
	tlsHandshakeFailures *prometheus.CounterVec   // by listener
	authzDenied          *prometheus.CounterVec   // by api, resource_type, operation
	fetchDelay           *prometheus.HistogramVec // by topic
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxo_kafka_requests_total",
			Help: "Kafka protocol requests received, by API.",
		}, []string{"api"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fluxo_kafka_request_duration_seconds",
			Help:    "Time spent in a request's handler, by API.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 100µs to ~26s
		}, []string{"api"}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fluxo_kafka_connections",
			Help: "Open Kafka protocol client connections.",
		}),
		connectionsRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fluxo_kafka_connections_rejected_total",
			Help: "Client connections closed on accept because MaxConnections were open.",
		}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxo_kafka_request_errors_total",
			Help: "Requests that were not served normally, by reason: malformed, oversized, unsupported, unauthenticated, handler.",
		}, []string{"reason"}),
		authSuccesses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxo_kafka_auth_successes_total",
			Help: "Connections authenticated, by listener and mechanism (SSL for a client certificate, PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).",
		}, []string{"listener", "mechanism"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxo_kafka_auth_failures_total",
			Help: "Failed authentications, by listener and mechanism (SSL for a refused client certificate, PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, unsupported for a disabled mechanism).",
		}, []string{"listener", "mechanism"}),
		tlsHandshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxo_kafka_tls_handshake_failures_total",
			Help: "TLS handshakes that failed or timed out, by listener.",
		}, []string{"listener"}),
		authzDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxo_kafka_authorization_denied_total",
			Help: "Authorization checks refused, by API, ACL resource type and operation.",
		}, []string{"api", "resource_type", "operation"}),
		fetchDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fluxo_core_fetch_delay_seconds",
			Help: "Delay from a record's timestamp to the consumer fetch that returns it, by topic: sampled once per partition per fetch, on the newest record returned (the batch's max timestamp).",
			// 1ms to ~36 min: a live consumer is at the low end, one
			// catching up after an outage at the high end.
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
		}, []string{"topic"}),
	}
	for _, r := range []string{reasonMalformed, reasonOversized, reasonUnsupported, reasonUnauthenticated, reasonHandler} {
		m.requestErrors.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.connections, m.connectionsRejected, m.requestErrors, m.authSuccesses, m.authFailures, m.tlsHandshakeFailures, m.authzDenied, m.fetchDelay} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("kafka: metrics already registered (one Registerer per server): %w", err)
			}
			return nil, fmt.Errorf("kafka: cannot register metrics: %w", err)
		}
	}
	return m, nil
}
