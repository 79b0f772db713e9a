package edge

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/bridge/uplink"
)

// RouteMessage makes of an MQTT publish the spool message the edge would
// make of it: the first of routes whose filter matches topic decides the
// core topic, the lane and the key (clientID is the key when the route
// says so, or when the topic does not follow {fleet}/{device}/{stream}),
// and the headers are mqtt.topic, mqtt.qos, mqtt.client (clientID, left
// out when it is the key), edge.id (edgeID) and edge.received_ms (now).
// ok is false when no route
// matches. It is for other front doors (the standalone bridge) that must
// write the same records as the edge.
func RouteMessage(routes []Route, edgeID, clientID, topic string, payload []byte, qos byte, now time.Time) (msg spool.Message, ok bool) {
	rt := router{routes: routes}
	r, key, ok := rt.route(topic, clientID)
	if !ok {
		return spool.Message{}, false
	}
	e := Edge{cfg: Config{EdgeID: edgeID}}
	return e.message(r, key, clientID, topic, payload, qos, nil, now, false), true
}

// NewSpoolCollector returns a Prometheus collector of a spool and the
// uplink that drains it, with the metrics an edge node exports
// (fluxo_edge_spool_bytes, fluxo_edge_spool_records,
// fluxo_edge_messages_total, fluxo_edge_uplink_*), read at scrape time.
func NewSpoolCollector(sp *spool.Spool, up *uplink.Uplink) prometheus.Collector {
	return &nodeCollector{n: &Node{spool: sp, uplink: up}}
}
