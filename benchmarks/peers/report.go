package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot/vg"

	"github.com/fluxo-io/fluxo/benchmarks/peers/internal/chart"
)

// report is peers.json: everything one run measured.
type report struct {
	Machine    string          `json:"machine"`
	Started    time.Time       `json:"started"`
	Finished   time.Time       `json:"finished"`
	Duration   string          `json:"duration"`
	Warmup     string          `json:"warmup"`
	Publishers []int           `json:"publishers"`
	Ingest     []mqttRun       `json:"ingest"`
	Failed     []string        `json:"failed,omitempty"` // points that did not complete
	Idle       mqttRun         `json:"idle"`
	Latency    mqttRun         `json:"latency"`
	KafkaFluxo []kafkaScenario `json:"kafka_fluxo"`
	KafkaKfake []kafkaScenario `json:"kafka_kfake"`
}

// mqttRun is benchmarks/mqtt's -json file.
type mqttRun struct {
	Publishers   int `json:"publishers"`
	PayloadBytes int `json:"payload_bytes"`
	Inflight     int `json:"inflight"`
	Throughput   []struct {
		Target string    `json:"target"`
		QoS    int       `json:"qos"`
		Rates  []float64 `json:"msgs_per_s"`
		Median float64   `json:"median_msgs_per_s"`
		Errors int64     `json:"errors"`
	} `json:"throughput,omitempty"`
	Latency []latency `json:"latency,omitempty"`
	Floors  []latency `json:"floors,omitempty"`
	Idle    []struct {
		Target  string    `json:"target"`
		Conns   []int     `json:"conns"`
		RSSMiB  []float64 `json:"rss_mib"`
		AnonMiB []float64 `json:"rss_anon_mib"`
	} `json:"idle,omitempty"`
	Killed []string `json:"killed,omitempty"`
}

type latency struct {
	Target    string `json:"target"`
	What      string `json:"what"`
	Count     int64  `json:"count"`
	Quantiles []struct {
		Q  float64 `json:"q"`
		Ms float64 `json:"ms"`
	} `json:"quantiles"`
}

func (l latency) at(q float64) float64 {
	for _, p := range l.Quantiles {
		if p.Q == q {
			return p.Ms
		}
	}
	return math.NaN()
}

// kafkaScenario is one element of benchmarks/kafka's -json file.
type kafkaScenario struct {
	Scenario      string  `json:"scenario"`
	Partitions    int     `json:"partitions"`
	ProduceMBps   float64 `json:"produce_mb_per_s"`
	ConsumeMBps   float64 `json:"consume_mb_per_s"`
	RecordsPerSec float64 `json:"records_per_s"`
	P99Ms         float64 `json:"p99_ms"`
	Records       int64   `json:"records"`
}

// fail records a point or phase that did not complete; the run goes on.
func (rep *report) fail(stderr io.Writer, msg string) {
	fmt.Fprintln(stderr, "peers: failed:", msg)
	rep.Failed = append(rep.Failed, msg)
}

func numCPU() int { return runtime.NumCPU() }

// mqttTargets are the MQTT servers, in the tables' order, with labels.
var mqttTargets = []struct{ name, label string }{
	{"edge-never", "fluxo edge (spool-sync never)"},
	{"edge-always", "fluxo edge (spool-sync always)"},
	{"mochi", "bare mochi-mqtt"},
	{"mosquitto", "Mosquitto"},
	{"nats", "NATS MQTT + JetStream"},
}

func label(target string) string {
	for _, t := range mqttTargets {
		if t.name == target {
			return t.label
		}
	}
	return target
}

// ingest returns the median msg/s of target at qos for each publisher
// count (x), NaN where the point failed.
func (rep *report) ingest(target string, qos int) (x, y []float64) {
	for _, n := range rep.Publishers {
		v := math.NaN()
		for _, r := range rep.Ingest {
			for _, t := range r.Throughput {
				if r.Publishers == n && t.Target == target && t.QoS == qos && t.Errors == 0 {
					v = t.Median
				}
			}
		}
		x = append(x, float64(n))
		y = append(y, v)
	}
	return x, y
}

// plots writes the PNG files into dir.
func plots(dir string, rep *report) error {
	w, h := 13*vg.Centimeter, 9*vg.Centimeter
	if len(rep.Ingest) > 0 {
		var panels []chart.Panel
		for _, qos := range []int{0, 1} {
			pn := chart.Panel{Title: fmt.Sprintf("MQTT ingest, QoS %d, %d B payloads", qos, rep.Ingest[0].PayloadBytes),
				XLabel: "publishers", YLabel: "msg/s (server's count)", LogX: true}
			for _, t := range mqttTargets {
				x, y := rep.ingest(t.name, qos)
				pn.Series = append(pn.Series, chart.Series{Name: t.label, X: x, Y: y})
			}
			panels = append(panels, pn)
		}
		if err := chart.Save(dir+"/mqtt-ingest.png", 2, w, h, panels...); err != nil {
			return err
		}
	}
	if len(rep.Idle.Idle) > 0 {
		pn := chart.Panel{Title: "RSS against idle MQTT connections", XLabel: "idle connections", YLabel: "RSS (MiB)"}
		for _, r := range rep.Idle.Idle {
			x := make([]float64, len(r.Conns))
			for i, c := range r.Conns {
				x[i] = float64(c)
			}
			name := label(r.Target)
			// edge-never: results from before the idle phase took -idle-targets
			if r.Target == "edge" || r.Target == "edge-never" {
				name = "fluxo edge"
			}
			pn.Series = append(pn.Series, chart.Series{Name: name, X: x, Y: r.RSSMiB})
		}
		if err := chart.Save(dir+"/mqtt-idle-rss.png", 1, w, h, pn); err != nil {
			return err
		}
	}
	if len(rep.KafkaFluxo) > 0 || len(rep.KafkaKfake) > 0 {
		prod := chart.Panel{Title: "Kafka produce, 1 KiB values, acks=1", XLabel: "partitions", YLabel: "MB/s", LogX: true}
		cons := chart.Panel{Title: "Kafka consume (whole topic)", XLabel: "partitions", YLabel: "MB/s", LogX: true}
		for _, s := range []struct {
			name string
			rs   []kafkaScenario
		}{{"fluxo core", rep.KafkaFluxo}, {"kfake", rep.KafkaKfake}} {
			var x, p, c []float64
			for _, r := range s.rs {
				x = append(x, float64(r.Partitions))
				p = append(p, r.ProduceMBps)
				c = append(c, r.ConsumeMBps)
			}
			prod.Series = append(prod.Series, chart.Series{Name: s.name, X: x, Y: p})
			cons.Series = append(cons.Series, chart.Series{Name: s.name, X: x, Y: c})
		}
		if err := chart.Save(dir+"/kafka-partitions.png", 2, w, h, prod, cons); err != nil {
			return err
		}
	}
	if len(rep.Latency.Latency) > 0 {
		pn := chart.Panel{Title: "Alarm trip latency CDF, with its floors", XLabel: "milliseconds", YLabel: "fraction of alarms", LogX: true, LegendBottomRight: true}
		add := func(name string, l latency) {
			var x, y []float64
			for _, q := range l.Quantiles {
				x = append(x, q.Ms)
				y = append(y, q.Q)
			}
			pn.Series = append(pn.Series, chart.Series{Name: name, X: x, Y: y})
		}
		for _, l := range rep.Latency.Latency {
			switch {
			case strings.HasPrefix(l.Target, "edge-") && l.What == "alarm device to consumer":
				add(label(l.Target)+": device to consumer", l)
			case l.Target == "mochi":
				add("floor: bare mochi PUBACK", l)
			}
		}
		for _, l := range rep.Latency.Floors {
			add("floor: "+l.What, l)
		}
		if err := chart.Save(dir+"/alarm-latency-cdf.png", 1, w, h, pn); err != nil {
			return err
		}
	}
	return nil
}

// printTables prints the run's tables in markdown, for benchmarks/README.md.
func printTables(w io.Writer, rep *report) {
	if len(rep.Ingest) > 0 {
		for _, qos := range []int{0, 1} {
			fmt.Fprintf(w, "\nMQTT ingest, QoS %d, msg/s (in parentheses: ratio to bare mochi at the same publisher count)\n\n| Server |", qos)
			for _, n := range rep.Publishers {
				fmt.Fprintf(w, " %d pub. |", n)
			}
			fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|", len(rep.Publishers)))
			_, base := rep.ingest("mochi", qos)
			for _, t := range mqttTargets {
				_, y := rep.ingest(t.name, qos)
				fmt.Fprintf(w, "| %s |", t.label)
				for i, v := range y {
					if math.IsNaN(v) {
						fmt.Fprint(w, " failed |")
						continue
					}
					fmt.Fprintf(w, " %.0f (%.2f) |", v, v/base[i])
				}
				fmt.Fprintln(w)
			}
		}
	}
	if len(rep.Idle.Idle) > 0 {
		r0 := rep.Idle.Idle[0]
		fmt.Fprintf(w, "\nRSS in MiB against idle connections\n\n| Server |")
		for _, c := range r0.Conns {
			fmt.Fprintf(w, " %d |", c)
		}
		fmt.Fprintf(w, " KiB per connection |\n|---|%s---:|\n", strings.Repeat("---:|", len(r0.Conns)))
		for _, r := range rep.Idle.Idle {
			name := label(r.Target)
			// edge-never: results from before the idle phase took -idle-targets
			if r.Target == "edge" || r.Target == "edge-never" {
				name = "fluxo edge"
			}
			fmt.Fprintf(w, "| %s |", name)
			for _, v := range r.RSSMiB {
				fmt.Fprintf(w, " %.1f |", v)
			}
			n := len(r.Conns) - 1
			per := math.NaN()
			if n > 0 && r.Conns[n] > r.Conns[0] {
				per = (r.RSSMiB[n] - r.RSSMiB[0]) * 1024 / float64(r.Conns[n]-r.Conns[0])
			}
			fmt.Fprintf(w, " %.1f |\n", per)
		}
	}
	if len(rep.KafkaFluxo) > 0 {
		fmt.Fprintf(w, "\nKafka, 1 KiB values, acks=1: produce / consume MB/s (fluxo ÷ kfake)\n\n| Partitions | fluxo core | kfake | Produce ratio | Consume ratio |\n|---:|---:|---:|---:|---:|\n")
		for i, f := range rep.KafkaFluxo {
			k := kafkaScenario{ProduceMBps: math.NaN(), ConsumeMBps: math.NaN()}
			if i < len(rep.KafkaKfake) {
				k = rep.KafkaKfake[i]
			}
			fmt.Fprintf(w, "| %d | %.1f / %.1f | %.1f / %.1f | %.2f | %.2f |\n", f.Partitions, f.ProduceMBps, f.ConsumeMBps,
				k.ProduceMBps, k.ConsumeMBps, f.ProduceMBps/k.ProduceMBps, f.ConsumeMBps/k.ConsumeMBps)
		}
	}
	if len(rep.Latency.Latency) > 0 {
		fmt.Fprintf(w, "\nAlarm trip and its floors, ms\n\n| What | Count | p50 | p90 | p99 | p99.9 |\n|---|---:|---:|---:|---:|---:|\n")
		rows := slices.Clone(rep.Latency.Latency)
		for _, l := range rep.Latency.Floors {
			l.Target = "floor"
			rows = append(rows, l)
		}
		for _, l := range rows {
			fmt.Fprintf(w, "| %s: %s | %d | %.2f | %.2f | %.2f | %.2f |\n", label(l.Target), l.What, l.Count, l.at(0.5), l.at(0.9), l.at(0.99), l.at(0.999))
		}
	}
	for _, f := range rep.Failed {
		fmt.Fprintf(w, "\nFailed: %s\n", f)
	}
	fmt.Fprintf(w, "\nMachine: %s. Run %s to %s.\n", rep.Machine, rep.Started.Format(time.RFC3339), rep.Finished.Format(time.RFC3339))
}
