package devices

import (
	"math"
	"math/rand/v2"
)

// A model is the simulated state of one device; the device's goroutine owns
// it. Headers of the messages it returns are left for the caller to stamp.
type model interface {
	// step advances the device by dt seconds and returns its regular
	// message (telemetry or status) and stream, and the alarm that the
	// step raised on its own with its stream, if any.
	step(r *rand.Rand, dt float64) (reading message, stream string, alarm message, alarmStream string)
	// raise brings about an alarm condition (a battery cell failing, an
	// engine overheating, an intrusion) and returns the alarm.
	raise(r *rand.Rand) (alarm message, stream string)
}

// newModel returns the initial state of a device of kind k.
func newModel(k Kind, r *rand.Rand) model {
	switch k {
	case Sensor:
		return newSensor(r)
	case Car:
		return newCar(r)
	case Panel:
		return newPanel(r)
	}
	panic("devices: unknown kind " + k.String())
}

// sensor is a room sensor: temperature and humidity revert to the room's
// own values with noise; the battery drains a little with every reading.
type sensor struct {
	baseTemp, temp float64 // °C
	baseHum, hum   float64 // %
	battery        float64 // %
	drain          float64 // % per reading
}

func newSensor(r *rand.Rand) *sensor {
	s := &sensor{
		baseTemp: 18 + 8*r.Float64(),
		baseHum:  35 + 30*r.Float64(),
		battery:  12 + 88*r.Float64(),
		drain:    0.002 + 0.008*r.Float64(),
	}
	s.temp = s.baseTemp + r.NormFloat64()
	s.hum = s.baseHum + 2*r.NormFloat64()
	return s
}

func (s *sensor) step(r *rand.Rand, _ float64) (message, string, message, string) {
	s.temp += 0.05*(s.baseTemp-s.temp) + 0.15*r.NormFloat64()
	s.hum = clamp(s.hum+0.05*(s.baseHum-s.hum)+0.4*r.NormFloat64(), 0, 100)
	before := s.battery
	s.battery -= s.drain
	if s.battery < batteryReplacedPct {
		s.battery = 100
	}
	reading := &SensorTelemetry{
		TemperatureC: round(s.temp, 1),
		HumidityPct:  round(s.hum, 1),
		BatteryPct:   round(s.battery, 1),
	}
	// Compare the values as published, so that an alarm never shows 10.0.
	if round(before, 1) >= BatteryLowPct && reading.BatteryPct < BatteryLowPct {
		alarm, stream := s.alarm()
		return reading, StreamTelemetry, alarm, stream
	}
	return reading, StreamTelemetry, nil, ""
}

func (s *sensor) raise(r *rand.Rand) (message, string) {
	if round(s.battery, 1) >= BatteryLowPct {
		s.battery = 3 + 6*r.Float64() // a cell fails
	}
	return s.alarm()
}

func (s *sensor) alarm() (message, string) {
	return &BatteryLowAlarm{
		Alarm:        AlarmBatteryLow,
		BatteryPct:   round(s.battery, 1),
		ThresholdPct: BatteryLowPct,
	}, StreamBatteryLow
}

// The cars drive around Marienplatz, Munich, within cityRadius of it.
const (
	cityLat, cityLon = 48.137154, 11.576124
	cityRadius       = 8000.0   // m
	metersPerDegree  = 111320.0 // along a meridian
	tankLiters       = 50.0
	litersPerKm      = 0.08
)

// car drives through the city: it cruises at a target speed that changes
// now and then (red lights, main roads), turns at corners, heads back when
// it strays too far, refuels when nearly empty, and its engine warms with
// speed.
type car struct {
	lat, lon   float64 // degrees
	heading    float64 // degrees, 0 = north, clockwise
	speed      float64 // km/h
	target     float64 // km/h
	fuel       float64 // %
	engineTemp float64 // °C
}

// cruise speeds a car picks its target from, km/h.
var cruise = [...]float64{0, 30, 30, 50, 50, 50, 70, 100}

func newCar(r *rand.Rand) *car {
	d := 3000 * math.Sqrt(r.Float64())
	a := 2 * math.Pi * r.Float64()
	c := &car{
		lat:        cityLat + d*math.Cos(a)/metersPerDegree,
		lon:        cityLon + d*math.Sin(a)/(metersPerDegree*math.Cos(cityLat*math.Pi/180)),
		heading:    360 * r.Float64(),
		target:     cruise[r.IntN(len(cruise))],
		fuel:       20 + 80*r.Float64(),
		engineTemp: 85 + 5*r.Float64(),
	}
	c.speed = c.target
	return c
}

func (c *car) step(r *rand.Rand, dt float64) (message, string, message, string) {
	if r.Float64() < 0.05*dt {
		c.target = cruise[r.IntN(len(cruise))]
	}
	c.speed = clamp(c.speed+0.3*(c.target-c.speed)*math.Min(dt, 3)+r.NormFloat64(), 0, 180)
	switch {
	case r.Float64() < 0.03*dt:
		c.heading += float64(90 * (2*r.IntN(2) - 1)) // a corner
	default:
		c.heading += 4 * r.NormFloat64()
	}
	north := (c.lat - cityLat) * metersPerDegree
	east := (c.lon - cityLon) * metersPerDegree * math.Cos(cityLat*math.Pi/180)
	if math.Hypot(north, east) > cityRadius {
		c.heading = math.Atan2(-east, -north) * 180 / math.Pi // back to the center
	}
	c.heading = math.Mod(c.heading+360, 360)

	meters := c.speed / 3.6 * dt
	h := c.heading * math.Pi / 180
	c.lat += meters * math.Cos(h) / metersPerDegree
	c.lon += meters * math.Sin(h) / (metersPerDegree * math.Cos(c.lat*math.Pi/180))
	c.fuel -= meters / 1000 * litersPerKm / tankLiters * 100
	if c.fuel < 5 {
		c.fuel = 100 // a filling station
	}

	before := c.engineTemp
	c.engineTemp += 0.1*(88+c.speed/20-c.engineTemp)*math.Min(dt, 5) + 0.3*r.NormFloat64()
	reading := &CarTelemetry{
		Lat:         round(c.lat, 6),
		Lon:         round(c.lon, 6),
		SpeedKmh:    round(c.speed, 1),
		HeadingDeg:  math.Round(c.heading),
		FuelPct:     round(c.fuel, 1),
		EngineTempC: round(c.engineTemp, 1),
	}
	if round(before, 1) <= EngineOverheatC && reading.EngineTempC > EngineOverheatC {
		alarm, stream := c.alarm()
		return reading, StreamTelemetry, alarm, stream
	}
	return reading, StreamTelemetry, nil, ""
}

func (c *car) raise(r *rand.Rand) (message, string) {
	c.engineTemp = EngineOverheatC + 1 + 8*r.Float64() // cools down over the next readings
	return c.alarm()
}

func (c *car) alarm() (message, string) {
	return &EngineOverheatAlarm{
		Alarm:       AlarmEngineOverheat,
		EngineTempC: round(c.engineTemp, 1),
		ThresholdC:  EngineOverheatC,
		Lat:         round(c.lat, 6),
		Lon:         round(c.lon, 6),
	}, StreamEngineOverheat
}

// panel is an alarm panel: mostly armed, a zone open now and then while
// disarmed, mains power failing rarely (the backup battery drains until it
// is back).
type panel struct {
	armed     bool
	openZones int
	mains     bool
	battery   float64 // %
}

func newPanel(r *rand.Rand) *panel {
	return &panel{armed: r.Float64() < 0.8, mains: true, battery: 95 + 5*r.Float64()}
}

func (p *panel) step(r *rand.Rand, _ float64) (message, string, message, string) {
	if r.Float64() < 0.02 {
		p.armed = !p.armed
	}
	p.openZones = 0
	if !p.armed && r.Float64() < 0.3 {
		p.openZones = 1 + r.IntN(2)
	}
	if r.Float64() < 0.01 {
		p.mains = !p.mains
	}
	if p.mains {
		p.battery = math.Min(100, p.battery+0.5)
	} else {
		p.battery = math.Max(0, p.battery-0.5)
	}
	return &PanelStatus{
		Armed:      p.armed,
		Zones:      PanelZones,
		OpenZones:  p.openZones,
		MainsPower: p.mains,
		BatteryPct: round(p.battery, 1),
	}, StreamStatus, nil, ""
}

func (p *panel) raise(r *rand.Rand) (message, string) {
	return &IntrusionAlarm{Alarm: AlarmIntrusion, Zone: 1 + r.IntN(PanelZones)}, StreamIntrusion
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }

// round rounds x to the given number of decimals, so that the JSON carries
// "21.4" rather than "21.437283719".
func round(x float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(x*p) / p
}
