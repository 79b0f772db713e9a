package registry

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// The stored form of a device.
//
// The devices bucket maps a device id to its record. A record is binary
// (storedV1) since the registry had to hold 10,000 devices in less file
// and heap than JSON took (about 170 bytes for a device that only
// published, against about 60, and a reflection-driven encoder run for
// every changed device every second); records written before, JSON
// objects, start with '{' and are still read.
//
//	+------+-------+-----------------------------------------------+
//	| 0xB1 | flags | fleet, client id, username, cert identity    |
//	|  1 B |  1 B  | each: uvarint length, bytes                   |
//	+------+-------+-----------------------------------------------+
//	| protocol (1 B) | first seen, last seen (varint unix ns; 0: none) |
//	+------------------------------------------------------------------+
//	| messages telemetry, alarm; bytes telemetry, alarm (varint each)   |
//	+------------------------------------------------------------------+
//	| subscriptions: uvarint count, then each string                   |
//	| last alarm (flag bit 2): topic string, varint at                 |
//	| commands: pending, delivered, acked, expired, rejected (varint)  |
//	| recent commands: uvarint count, then each: id, name, status,     |
//	|   reason (strings), varint at                                    |
//	+------------------------------------------------------------------+
//
// flags: bit 0 connected, bit 1 persistent session, bit 2 last alarm
// present; the other bits are zero. The id is the record's key. Strings
// are UTF-8 as given; a record ends with its last field (nothing may
// follow).

// storedV1 is the first byte of a binary record.
const storedV1 = 0xB1

const (
	flagConnected  = 1 << 0
	flagPersistent = 1 << 1
	flagLastAlarm  = 1 << 2
)

// errStored is a record that does not decode.
var errStored = errors.New("registry: malformed device record")

// appendEntry appends e's record to b. r.mu held (e is read).
func appendEntry(b []byte, e *entry) []byte {
	var flags byte
	x := e.x
	if x == nil {
		x = &extra{}
	}
	if e.connected {
		flags |= flagConnected
	}
	if x.persistent {
		flags |= flagPersistent
	}
	if x.lastAlarm != nil {
		flags |= flagLastAlarm
	}
	b = append(b, storedV1, flags)
	for _, s := range []string{e.fleet, x.clientID, x.username, x.certIdentity} {
		b = appendString(b, s)
	}
	b = append(b, x.protocol)
	for _, v := range []int64{e.first, e.last, e.msgs.Telemetry, e.msgs.Alarm, e.bytes.Telemetry, e.bytes.Alarm} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(x.subscriptions)))
	for _, s := range x.subscriptions {
		b = appendString(b, s)
	}
	if x.lastAlarm != nil {
		b = appendString(b, x.lastAlarm.Topic)
		b = binary.AppendVarint(b, unixNano(x.lastAlarm.At))
	}
	c := x.commands
	for _, v := range []int64{c.Pending, c.Delivered, c.Acked, c.Expired, c.Rejected} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(x.recent)))
	for _, cs := range x.recent {
		b = appendString(b, cs.ID)
		b = appendString(b, cs.Name)
		b = appendString(b, string(cs.Status))
		b = appendString(b, cs.Reason)
		b = binary.AppendVarint(b, unixNano(cs.At))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeDevice decodes the record v of device id: binary, or the JSON of
// earlier versions.
func decodeDevice(id string, v []byte) (Device, error) {
	if len(v) > 0 && v[0] == '{' {
		var d Device
		if err := json.Unmarshal(v, &d); err != nil {
			return Device{}, err
		}
		d.ID = id
		return d, nil
	}
	r := storedReader{b: v}
	if r.byte() != storedV1 {
		return Device{}, fmt.Errorf("%w: unknown version", errStored)
	}
	flags := r.byte()
	d := Device{ID: id, Connected: flags&flagConnected != 0, Persistent: flags&flagPersistent != 0}
	d.Fleet, d.ClientID, d.Username, d.CertIdentity = r.string(), r.string(), r.string(), r.string()
	d.Protocol = r.byte()
	d.FirstSeen, d.LastSeen = fromNano(r.varint()), fromNano(r.varint())
	d.Messages = Counts{Telemetry: r.varint(), Alarm: r.varint()}
	d.Bytes = Counts{Telemetry: r.varint(), Alarm: r.varint()}
	if n := r.count(); n > 0 {
		d.Subscriptions = make([]string, n)
		for i := range d.Subscriptions {
			d.Subscriptions[i] = r.string()
		}
	}
	if flags&flagLastAlarm != 0 {
		d.LastAlarm = &Alarm{Topic: r.string(), At: fromNano(r.varint())}
	}
	d.Commands = Commands{Pending: r.varint(), Delivered: r.varint(), Acked: r.varint(), Expired: r.varint(), Rejected: r.varint()}
	if n := r.count(); n > 0 {
		d.Recent = make([]CommandState, n)
		for i := range d.Recent {
			d.Recent[i] = CommandState{ID: r.string(), Name: r.string(), Status: Status(r.string()), Reason: r.string(), At: fromNano(r.varint())}
		}
	}
	switch {
	case r.err != nil:
		return Device{}, r.err
	case flags&^(flagConnected|flagPersistent|flagLastAlarm) != 0:
		return Device{}, fmt.Errorf("%w: unknown flags %#x", errStored, flags)
	case len(r.b) > 0:
		return Device{}, fmt.Errorf("%w: %d bytes after the record", errStored, len(r.b))
	}
	return d, nil
}

// storedReader reads a record's fields; the first error sticks and later
// reads return zero values.
type storedReader struct {
	b   []byte
	err error
}

func (r *storedReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s", errStored, what)
	}
	r.b = nil
}

func (r *storedReader) byte() byte {
	if len(r.b) < 1 {
		r.fail("byte")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *storedReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *storedReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("length")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *storedReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("string")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a list's length; each element takes at least one byte, so
// a count past the bytes left is malformed (and allocates nothing).
func (r *storedReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) || n > math.MaxInt32 {
		r.fail("list")
		return 0
	}
	return int(n)
}
