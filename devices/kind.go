package devices

import (
	"fmt"
	"strings"
)

// Kind is a kind of simulated device.
type Kind uint8

const (
	// Sensor is a battery-powered temperature and humidity sensor.
	Sensor Kind = iota
	// Car is a car reporting its GPS position, speed, fuel and engine.
	Car
	// Panel is an alarm panel sending heartbeats and intrusion alarms.
	Panel

	numKinds = 3
)

// Kinds lists every kind, in the order of Stats.ByKind.
var Kinds = [numKinds]Kind{Sensor, Car, Panel}

func (k Kind) String() string {
	switch k {
	case Sensor:
		return "sensor"
	case Car:
		return "car"
	case Panel:
		return "panel"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Fleet returns the first level of the topics of devices of kind k:
// "sensors", "cars" or "panels".
func (k Kind) Fleet() string {
	switch k {
	case Sensor:
		return "sensors"
	case Car:
		return "cars"
	case Panel:
		return "panels"
	}
	return k.String()
}

// Stream names, the last levels of a topic.
const (
	StreamTelemetry      = "telemetry"             // sensors and cars
	StreamStatus         = "status"                // panels
	StreamCommand        = "cmd"                   // to a device
	StreamReply          = "cmd/reply"             // a device's answer to a command
	StreamBatteryLow     = "alarm/battery-low"     // sensors
	StreamEngineOverheat = "alarm/engine-overheat" // cars
	StreamIntrusion      = "alarm/intrusion"       // panels
)

// DeviceID returns the id of the n-th device (from 1) of kind k:
// DeviceID(Car, 7) is "c-0007". It is also the device's MQTT client id.
func DeviceID(k Kind, n int) string {
	return fmt.Sprintf("%c-%04d", k.Fleet()[0], n)
}

// Topic returns the topic on which device id of kind k publishes stream:
// Topic(Car, "c-0007", StreamTelemetry) is "cars/c-0007/telemetry".
func Topic(k Kind, id, stream string) string {
	return k.Fleet() + "/" + id + "/" + stream
}

// ParseTopic splits a device topic into its kind, device id and stream. It
// reports false for a topic outside the scheme.
func ParseTopic(topic string) (k Kind, id, stream string, ok bool) {
	fleet, rest, ok1 := strings.Cut(topic, "/")
	id, stream, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 || id == "" || stream == "" {
		return 0, "", "", false
	}
	for _, k := range Kinds {
		if k.Fleet() == fleet {
			return k, id, stream, true
		}
	}
	return 0, "", "", false
}
