package edge

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxo-io/fluxo/bridge/spool"
	"github.com/fluxo-io/fluxo/bridge/uplink"
)

// NewSpoolCollector returns a Prometheus collector of a spool and the
// uplink that drains it, with the metrics an edge node exports
// (fluxo_edge_spool_bytes, fluxo_edge_spool_records,
// fluxo_edge_messages_total, fluxo_edge_uplink_*), read at scrape time.
func NewSpoolCollector(sp *spool.Spool, up *uplink.Uplink) prometheus.Collector {
	return &nodeCollector{n: &Node{spool: sp, uplink: up}}
}
