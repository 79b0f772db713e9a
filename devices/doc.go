// Package devices simulates fleets of IoT devices that publish JSON over MQTT
// with the Eclipse Paho client: temperature sensors, cars and alarm panels.
// The demo, the tests and the benchmarks use it as the traffic in front of an
// edge node, and it works against any MQTT 3.1.1 server.
//
// # Topics
//
// A device publishes on {fleet}/{device}/{stream}:
//
//	fleet    device ids            streams
//	sensors  s-0001, s-0002, …     telemetry, alarm/battery-low
//	cars     c-0001, c-0002, …     telemetry, alarm/engine-overheat
//	panels   p-0001, p-0002, …     status, alarm/intrusion
//
// Every device also subscribes (QoS 1) to {fleet}/{device}/cmd and answers
// each command on {fleet}/{device}/cmd/reply (QoS 1). Its MQTT client id is
// its device id and its session is persistent (clean session off), so
// commands sent while it is offline are delivered when it comes back; two
// fleets with the same device ids must not share a broker.
//
// # Messages
//
// Every message is a JSON object that starts with the same three fields:
//
//	device  string  the device id, "s-0001"
//	seq     number  1 for the device's first message, then one more for
//	                every message it publishes, on any of its topics
//	ts_ms   number  when the device published it, Unix milliseconds
//
// so a consumer can check order (seq increases per device) and measure
// latency (its clock minus ts_ms). The rest depends on the stream:
//
//	sensors/s-0001/telemetry
//	  {"device":"s-0001","seq":1,"ts_ms":1767225600000,
//	   "temperature_c":21.4,"humidity_pct":48.2,"battery_pct":87.3}
//	sensors/s-0001/alarm/battery-low            (battery below 10 %)
//	  {"device":"s-0001","seq":9,"ts_ms":…,"alarm":"battery-low",
//	   "battery_pct":7.9,"threshold_pct":10}
//	cars/c-0001/telemetry
//	  {"device":"c-0001","seq":1,"ts_ms":…,"lat":48.139512,"lon":11.571203,
//	   "speed_kmh":43.5,"heading_deg":127,"fuel_pct":64.2,"engine_temp_c":91.3}
//	cars/c-0001/alarm/engine-overheat           (engine above 110 °C)
//	  {"device":"c-0001","seq":40,"ts_ms":…,"alarm":"engine-overheat",
//	   "engine_temp_c":113.6,"threshold_c":110,"lat":48.139512,"lon":11.571203}
//	panels/p-0001/status
//	  {"device":"p-0001","seq":1,"ts_ms":…,"armed":true,"zones":8,
//	   "open_zones":0,"mains_power":true,"battery_pct":99.1}
//	panels/p-0001/alarm/intrusion
//	  {"device":"p-0001","seq":2,"ts_ms":…,"alarm":"intrusion","zone":3}
//	{fleet}/{device}/cmd/reply                  (answer to a command)
//	  {"device":"c-0001","seq":41,"ts_ms":…,"cmd_id":"42","status":"ok"}
//
// A command is any JSON object; its "id" field, if any, comes back verbatim
// (string or number) as the reply's "cmd_id". A payload that is not a JSON
// object is answered with "status":"error" and an "error" field.
//
// Sensors and cars publish telemetry at Config.Rate messages per second each,
// panels a status heartbeat at Config.PanelRate, all with ±20 % jitter.
// Readings follow random walks with the seed in Config.Seed; alarms come now
// and then at about Config.AlarmRate per second over the whole fleet (a
// battery cell failing, an engine overheating, a door opening), and sensors
// also raise battery-low when their battery runs down on its own.
//
// # Running
//
// Run starts one Paho client and one goroutine per device, publishes until
// Config.Duration has passed or its context is done, waits a little for the
// last acknowledgements, disconnects and returns the counters (Stats); an
// Observer gets snapshots of them while it runs.
//
// A device that loses its connection reconnects with exponential backoff
// (Paho's auto-reconnect, capped at Config.MaxReconnectInterval) and renews
// its command subscription. The QoS 1 and 2 messages it had sent without an
// acknowledgement yet are sent again once it is back (so a consumer may see
// such a seq twice); the readings and alarms that fall due while it is
// offline are dropped and counted in Stats.Dropped, and take no seq, so the
// seqs a device hands to its client have no gaps.
package devices
