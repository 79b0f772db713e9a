// Package registry is the edge's device registry: what the edge knows of
// every device that connected, subscribed or published through it, and
// the commands waiting for devices the downlink cannot reach yet.
//
// It is fed by the MQTT server's events (Connected, Disconnected,
// Subscribed, Unsubscribed, Published), kept in memory under an LRU cap
// (Config.MaxDevices; evictions are counted) and written to a bbolt file
// (Config.Path) in batches, every Config.FlushInterval, so a publish costs
// a map update and never an fsync. Commands queued for devices
// (Enqueue) and the responses the edge waits for (Expect) are written at
// once, before the downlink commits their offsets.
//
// The bbolt file has three buckets:
//
//	devices   device id            → Device, binary (stored.go; JSON before, still read)
//	pending   device id NUL cmd id → Command, JSON
//	expect    cmd id               → Expectation, JSON
//
// Handler serves the registry as JSON (/api/devices, /api/devices/{id}).
//
// Records still in the spool are not counted per device: the spool keeps
// no per-key index, and scanning it would cost more than the registry
// itself; Device.Messages and Bytes count what the device published.
package registry
