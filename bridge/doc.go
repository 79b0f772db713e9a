// Package bridge is a `fluxo bridge` node: a site's MQTT broker as the
// input (bridge/source, subscribing with a persistent session) and the
// forwarder every fluxo input shares (bridge/forward: spool, uplink,
// accounting, metrics), with /healthz, /readyz and /metrics over HTTP.
// It is to the bridge what edge.Node is to the edge.
//
// The packages under it are the parts both nodes are built from:
// bridge/route (routing rules, the message → record mapping),
// bridge/spool, bridge/uplink, bridge/downlink, bridge/forward and
// bridge/source. None of them imports the edge.
package bridge
