package devices

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// distance returns how far a car at lat, lon is from the city center, in m.
func distance(lat, lon float64) float64 {
	north := (lat - cityLat) * metersPerDegree
	east := (lon - cityLon) * metersPerDegree * math.Cos(cityLat*math.Pi/180)
	return math.Hypot(north, east)
}

func TestModelsStayPlausible(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 0))
		s, c, p := newSensor(r), newCar(r), newPanel(r)
		for i := 0; i < 5000; i++ {
			reading, _, _, _ := s.step(r, 1)
			st := reading.(*SensorTelemetry)
			if st.TemperatureC < -20 || st.TemperatureC > 50 || st.HumidityPct < 0 || st.HumidityPct > 100 ||
				st.BatteryPct < 0 || st.BatteryPct > 100 {
				t.Fatalf("seed %d, step %d: got sensor reading %+v, want a room's values", seed, i, st)
			}

			reading, _, _, _ = c.step(r, 1)
			ct := reading.(*CarTelemetry)
			if d := distance(ct.Lat, ct.Lon); d > cityRadius+200 {
				t.Fatalf("seed %d, step %d: got car %.0f m from the center, want at most %.0f", seed, i, d, cityRadius+200)
			}
			if ct.SpeedKmh < 0 || ct.SpeedKmh > 180 || ct.FuelPct < 0 || ct.FuelPct > 100 ||
				ct.HeadingDeg < 0 || ct.HeadingDeg > 360 || ct.EngineTempC < 60 || ct.EngineTempC > 130 {
				t.Fatalf("seed %d, step %d: got car reading %+v, want a car's values", seed, i, ct)
			}

			reading, _, _, _ = p.step(r, 10)
			ps := reading.(*PanelStatus)
			if ps.Zones != PanelZones || ps.OpenZones < 0 || ps.OpenZones > PanelZones || ps.BatteryPct < 0 || ps.BatteryPct > 100 {
				t.Fatalf("seed %d, step %d: got panel status %+v, want a panel's values", seed, i, ps)
			}
		}
	}
}

func TestCarMoves(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	c := newCar(r)
	c.target, c.speed = 50, 50
	var path float64 // m
	for i := 0; i < 60; i++ {
		lat, lon := c.lat, c.lon
		c.step(r, 1)
		north := (c.lat - lat) * metersPerDegree
		east := (c.lon - lon) * metersPerDegree * math.Cos(lat*math.Pi/180)
		path += math.Hypot(north, east)
	}
	// A minute at up to 50 km/h, with a red light or two: up to 830 m.
	if path < 50 || path > 2000 {
		t.Errorf("got %.0f m driven in a minute from 50 km/h, want 50 to 2000", path)
	}
	before := c.fuel
	for i := 0; i < 600; i++ {
		c.step(r, 1)
	}
	if c.fuel >= before && c.fuel != 100 {
		t.Errorf("got fuel %.2f %% after ten minutes, from %.2f %%, want less (or a full tank)", c.fuel, before)
	}
}

func TestSensorBatteryLowOnItsOwn(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	s := newSensor(r)
	s.battery, s.drain = BatteryLowPct+0.015, 0.01
	var alarms []float64
	for i := 0; i < 10; i++ {
		_, _, alarm, stream := s.step(r, 1)
		if alarm != nil {
			if stream != StreamBatteryLow {
				t.Fatalf("got alarm on %q, want %q", stream, StreamBatteryLow)
			}
			alarms = append(alarms, alarm.(*BatteryLowAlarm).BatteryPct)
		}
	}
	if len(alarms) != 1 || alarms[0] >= BatteryLowPct {
		t.Errorf("got battery-low alarms at %v %%, want one below %v %%", alarms, BatteryLowPct)
	}

	// A drained battery is replaced.
	s.battery = batteryReplacedPct + 0.005
	reading, _, _, _ := s.step(r, 1)
	if got := reading.(*SensorTelemetry).BatteryPct; got != 100 {
		t.Errorf("got battery %v %% after running out, want 100 (replaced)", got)
	}
}

func TestRaiseAlwaysAlarms(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	tests := []struct {
		kind   Kind
		stream string
		check  func(message) bool
	}{
		{Sensor, StreamBatteryLow, func(m message) bool {
			a := m.(*BatteryLowAlarm)
			return a.Alarm == AlarmBatteryLow && a.BatteryPct < BatteryLowPct && a.ThresholdPct == BatteryLowPct
		}},
		{Car, StreamEngineOverheat, func(m message) bool {
			a := m.(*EngineOverheatAlarm)
			return a.Alarm == AlarmEngineOverheat && a.EngineTempC > EngineOverheatC && distance(a.Lat, a.Lon) < cityRadius+200
		}},
		{Panel, StreamIntrusion, func(m message) bool {
			a := m.(*IntrusionAlarm)
			return a.Alarm == AlarmIntrusion && a.Zone >= 1 && a.Zone <= PanelZones
		}},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			m := newModel(tt.kind, r)
			for i := 0; i < 100; i++ {
				m.step(r, 1)
				alarm, stream := m.raise(r)
				if stream != tt.stream || !tt.check(alarm) {
					b, _ := json.Marshal(alarm)
					t.Fatalf("got alarm %s on %q, want a valid one on %q", b, stream, tt.stream)
				}
			}
		})
	}
}

func TestCarCoolsDownAfterOverheating(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	c := newCar(r)
	c.raise(r)
	for i := 0; i < 60; i++ {
		_, _, alarm, _ := c.step(r, 1)
		if alarm != nil {
			t.Fatalf("step %d: got a second alarm while cooling down, want none", i)
		}
	}
	if c.engineTemp > EngineOverheatC {
		t.Errorf("got engine at %.1f °C a minute after overheating, want below %v", c.engineTemp, EngineOverheatC)
	}
}

func TestModelsAreDeterministic(t *testing.T) {
	run := func() []byte {
		var out []byte
		for _, k := range Kinds {
			r := rand.New(rand.NewPCG(42, uint64(k)))
			m := newModel(k, r)
			for i := 0; i < 50; i++ {
				reading, _, _, _ := m.step(r, 0.5)
				b, _ := json.Marshal(reading)
				out = append(out, b...)
			}
		}
		return out
	}
	if a, b := run(), run(); string(a) != string(b) {
		t.Errorf("got different readings from the same seed, want the same")
	}
}

func TestRound(t *testing.T) {
	tests := []struct {
		x        float64
		decimals int
		want     string
	}{
		{21.437283719, 1, "21.4"},
		{48.13715412345, 6, "48.137154"},
		{99.95, 1, "100"},
		{-3.04, 1, "-3"},
	}
	for _, tt := range tests {
		b, _ := json.Marshal(round(tt.x, tt.decimals))
		if string(b) != tt.want {
			t.Errorf("round(%v, %d): got %s, want %s", tt.x, tt.decimals, b, tt.want)
		}
	}
}
