package main

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
)

// car is one simulated car's state: the readings of the devices package's
// CarTelemetry, following random walks, so that consecutive messages
// look like a real fleet's (same keys, slowly changing values).
type car struct {
	id                       string
	seq                      uint64
	lat, lon, speed, heading float64
	fuel, engineTemp         float64
	r                        *rand.Rand
}

func newCar(i int, seed uint64) *car {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	return &car{
		id:         fmt.Sprintf("c-%04d", i+1),
		lat:        48.1 + r.Float64()*0.1,
		lon:        11.5 + r.Float64()*0.1,
		speed:      r.Float64() * 100,
		heading:    math.Floor(r.Float64() * 360),
		fuel:       20 + r.Float64()*80,
		engineTemp: 85 + r.Float64()*10,
		r:          r,
	}
}

// topic is the car's MQTT topic for stream ("telemetry",
// "alarm/engine-overheat"), as the devices package names it.
func (c *car) topic(stream string) string { return "cars/" + c.id + "/" + stream }

func (c *car) step() {
	c.seq++
	c.speed = min(max(c.speed+c.r.NormFloat64()*3, 0), 180)
	c.heading = math.Mod(c.heading+math.Round(c.r.NormFloat64()*5)+360, 360)
	d := c.speed / 3600 / 111 // degrees per second, roughly
	c.lat += d * math.Cos(c.heading*math.Pi/180)
	c.lon += d * math.Sin(c.heading*math.Pi/180)
	c.fuel = max(c.fuel-c.speed*1e-5, 0)
	c.engineTemp = min(max(c.engineTemp+c.r.NormFloat64()*0.3, 70), 125)
}

// header appends the fields every devices message starts with; with
// tsNs > 0 also "ts_ns", the send time in nanoseconds the latency
// scenario measures from.
func (c *car) header(b []byte, tsNs int64) []byte {
	b = append(b, `{"device":"`...)
	b = append(b, c.id...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, c.seq, 10)
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, tsNs/1e6, 10)
	return b
}

func appendField(b []byte, name string, v float64, prec int) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendFloat(b, v, 'f', prec, 64)
}

// telemetry appends the next cars/{id}/telemetry payload, shaped like
// devices.CarTelemetry:
//
//	{"device":"c-0001","seq":1,"ts_ms":…,"lat":48.139512,"lon":11.571203,
//	 "speed_kmh":43.5,"heading_deg":127,"fuel_pct":64.2,"engine_temp_c":91.3}
//
// followed by "ts_ns" when withNs.
func (c *car) telemetry(b []byte, tsNs int64, withNs bool) []byte {
	c.step()
	b = c.header(b, tsNs)
	b = appendField(b, "lat", c.lat, 6)
	b = appendField(b, "lon", c.lon, 6)
	b = appendField(b, "speed_kmh", c.speed, 1)
	b = appendField(b, "heading_deg", c.heading, 0)
	b = appendField(b, "fuel_pct", c.fuel, 1)
	b = appendField(b, "engine_temp_c", c.engineTemp, 1)
	if withNs {
		b = append(b, `,"ts_ns":`...)
		b = strconv.AppendInt(b, tsNs, 10)
	}
	return append(b, '}')
}

// alarm appends the next cars/{id}/alarm/engine-overheat payload, shaped
// like devices.EngineOverheatAlarm, with "ts_ns".
func (c *car) alarm(b []byte, tsNs int64) []byte {
	c.step()
	b = c.header(b, tsNs)
	b = append(b, `,"alarm":"engine-overheat"`...)
	b = appendField(b, "engine_temp_c", max(c.engineTemp, 110.1), 1)
	b = append(b, `,"threshold_c":110`...)
	b = appendField(b, "lat", c.lat, 6)
	b = appendField(b, "lon", c.lon, 6)
	b = append(b, `,"ts_ns":`...)
	b = strconv.AppendInt(b, tsNs, 10)
	return append(b, '}')
}

// tsNs reads the "ts_ns" field of a payload; 0 if there is none.
func tsNs(payload []byte) int64 { return jsonInt(payload, `"ts_ns":`) }

// tsMs reads the "ts_ms" field of a payload; 0 if there is none.
func tsMs(payload []byte) int64 { return jsonInt(payload, `"ts_ms":`) }

// jsonInt reads the non-negative integer after key (`"name":`) in a
// payload; 0 if key is absent.
func jsonInt(payload []byte, key string) int64 {
	i := bytes.Index(payload, []byte(key))
	if i < 0 {
		return 0
	}
	var v int64
	for _, ch := range payload[i+len(key):] {
		if ch < '0' || ch > '9' {
			break
		}
		v = v*10 + int64(ch-'0')
	}
	return v
}

// fixedPayloads returns n payloads of exactly size bytes: car telemetry
// padded with a "pad" field of 'x's (or cut, when size is too small for
// the JSON). They are made once, so publishing costs the client no
// encoding.
func fixedPayloads(n, size int, seed uint64) [][]byte {
	out := make([][]byte, n)
	c := newCar(0, seed)
	for i := range out {
		b := c.telemetry(make([]byte, 0, size+64), int64(1767225600000+i)*1e6, false)
		const padOpen, padClose = `,"pad":"`, `"}`
		if room := size - (len(b) - 1) - len(padOpen) - len(padClose); room >= 0 {
			b = append(b[:len(b)-1], padOpen...)
			b = append(b, bytes.Repeat([]byte{'x'}, room)...)
			b = append(b, padClose...)
		} else {
			for len(b) < size {
				b = append(b, ' ')
			}
			b = b[:size]
		}
		out[i] = b
	}
	return out
}
