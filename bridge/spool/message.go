package spool

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Lane is a queue of the spool. Alarms and telemetry are kept apart so
// alarms can go first and are never evicted.
type Lane uint8

const (
	// Telemetry is the bulk lane: batched with linger, evicted oldest
	// first when the disk budget is full.
	Telemetry Lane = iota
	// Alarm is the fast lane: sent first with no linger, never evicted.
	Alarm
	numLanes
)

func (l Lane) String() string {
	switch l {
	case Telemetry:
		return "telemetry"
	case Alarm:
		return "alarm"
	}
	return "unknown"
}

// ParseLane is the inverse of Lane.String.
func ParseLane(s string) (Lane, error) {
	switch s {
	case "telemetry":
		return Telemetry, nil
	case "alarm":
		return Alarm, nil
	}
	return 0, errors.New("spool: unknown lane " + s + ": want alarm or telemetry")
}

// Message is one accepted MQTT publish on its way to the core.
type Message struct {
	Lane    Lane
	Topic   string        // core topic
	Key     []byte        // record key (the device id)
	Value   []byte        // record value (the MQTT payload)
	Headers []kmsg.Header // record headers (MQTT topic, QoS, edge id, receive time, ...)
	Time    time.Time     // receive time: the record's timestamp
}

var (
	// ErrFull is returned by Append when the disk budget is used up by
	// records that cannot be evicted (alarms), or the disk itself is full.
	// Nothing of the call was stored.
	ErrFull = errors.New("spool: full")
	// ErrTooLarge is returned for a message larger than a spool batch may be.
	ErrTooLarge = errors.New("spool: message too large")
	// ErrClosed is returned once the spool is closed.
	ErrClosed = errors.New("spool: closed")
)
