package devices

import "encoding/json"

// Header holds the fields every message starts with.
type Header struct {
	// Device is the id of the device that published the message.
	Device string `json:"device"`
	// Seq is 1 for a device's first message and one more for each message
	// after it, whatever its topic.
	Seq uint64 `json:"seq"`
	// TsMs is when the device published the message, in Unix milliseconds.
	TsMs int64 `json:"ts_ms"`
}

// stamp sets the header of the message that embeds h.
func (h *Header) stamp(x Header) { *h = x }

// message is a payload with a Header.
type message interface{ stamp(Header) }

// SensorTelemetry is the payload of sensors/{device}/telemetry.
type SensorTelemetry struct {
	Header
	TemperatureC float64 `json:"temperature_c"`
	HumidityPct  float64 `json:"humidity_pct"`
	BatteryPct   float64 `json:"battery_pct"`
}

// CarTelemetry is the payload of cars/{device}/telemetry.
type CarTelemetry struct {
	Header
	Lat         float64 `json:"lat"`
	Lon         float64 `json:"lon"`
	SpeedKmh    float64 `json:"speed_kmh"`
	HeadingDeg  float64 `json:"heading_deg"`
	FuelPct     float64 `json:"fuel_pct"`
	EngineTempC float64 `json:"engine_temp_c"`
}

// PanelStatus is the payload of panels/{device}/status, a heartbeat.
type PanelStatus struct {
	Header
	Armed      bool    `json:"armed"`
	Zones      int     `json:"zones"`
	OpenZones  int     `json:"open_zones"`
	MainsPower bool    `json:"mains_power"`
	BatteryPct float64 `json:"battery_pct"`
}

// Alarm names, the value of the "alarm" field of an alarm.
const (
	AlarmBatteryLow     = "battery-low"
	AlarmEngineOverheat = "engine-overheat"
	AlarmIntrusion      = "intrusion"
)

// Alarm thresholds.
const (
	BatteryLowPct      = 10.0  // a sensor's battery-low alarm fires below this
	EngineOverheatC    = 110.0 // a car's engine-overheat alarm fires above this
	PanelZones         = 8     // zones of an alarm panel, numbered from 1
	batteryReplacedPct = 1.0   // a sensor's battery is replaced below this
)

// BatteryLowAlarm is the payload of sensors/{device}/alarm/battery-low.
type BatteryLowAlarm struct {
	Header
	Alarm        string  `json:"alarm"` // AlarmBatteryLow
	BatteryPct   float64 `json:"battery_pct"`
	ThresholdPct float64 `json:"threshold_pct"`
}

// EngineOverheatAlarm is the payload of cars/{device}/alarm/engine-overheat.
type EngineOverheatAlarm struct {
	Header
	Alarm       string  `json:"alarm"` // AlarmEngineOverheat
	EngineTempC float64 `json:"engine_temp_c"`
	ThresholdC  float64 `json:"threshold_c"`
	Lat         float64 `json:"lat"`
	Lon         float64 `json:"lon"`
}

// IntrusionAlarm is the payload of panels/{device}/alarm/intrusion.
type IntrusionAlarm struct {
	Header
	Alarm string `json:"alarm"` // AlarmIntrusion
	Zone  int    `json:"zone"`
}

// Command is what a device reads from {fleet}/{device}/cmd. Only ID matters
// to the simulator; any other field is accepted and ignored.
type Command struct {
	// ID identifies the command; it comes back as Reply.CmdID. A JSON
	// string or number, kept verbatim.
	ID json.RawMessage `json:"id,omitempty"`
}

// Reply is the payload of {fleet}/{device}/cmd/reply.
type Reply struct {
	Header
	// CmdID is the command's "id" field, verbatim; absent when it had none.
	CmdID json.RawMessage `json:"cmd_id,omitempty"`
	// Status is "ok", or "error" for a payload that is not a JSON object.
	Status string `json:"status"`
	// Error says what was wrong with the command when Status is "error".
	Error string `json:"error,omitempty"`
}

// Reply statuses.
const (
	StatusOK    = "ok"
	StatusError = "error"
)
