package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
	"github.com/fluxo-io/fluxo/benchmarks/internal/hist"
)

var targetLabels = map[string]string{
	targetEdgeNever:  "fluxo edge, --spool-sync never",
	targetEdgeAlways: "fluxo edge, --spool-sync always",
	targetMochi:      "bare mochi-mqtt (baseline)",
	targetMosquitto:  "Mosquitto",
}

// median returns the run with the median rate (the lower middle one for
// an even count).
func median(rs []loadResult) loadResult {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b loadResult) int {
		switch {
		case a.rate() < b.rate():
			return -1
		case a.rate() > b.rate():
			return 1
		}
		return 0
	})
	return s[(len(s)-1)/2]
}

// ratio is the median over rounds of target's rate divided by the bare
// mochi server's rate in the same round; 0 when either is missing.
func ratio(rep report, name string, qos byte) float64 {
	ts, ms := rep.throughput[runKey(name, qos)], rep.throughput[runKey(targetMochi, qos)]
	var rs []float64
	for i := range min(len(ts), len(ms)) {
		rs = append(rs, ts[i].rate()/ms[i].rate())
	}
	if len(rs) == 0 {
		return 0
	}
	slices.Sort(rs)
	return rs[(len(rs)-1)/2]
}

func printReport(w io.Writer, o options, rep report) {
	edgeKind := "`fluxo edge` process"
	if o.inProcess {
		edgeKind = "edge node in the harness's process (edge.NewNode)"
	}
	if len(rep.throughput) > 0 {
		inflight := fmt.Sprintf("%d unacknowledged publishes per publisher", o.inflight)
		if o.inflight == 1 {
			inflight = "each publisher waits for every PUBACK"
		}
		fmt.Fprintf(w, "Throughput: %d paho publishers (MQTT 3.1.1), %d B payloads, %v timed after %v of warm-up, %d round(s), medians; QoS 1: %s. Edge: %s forwarding to a `fluxo core` process. CPU in cores (CPU seconds per second) over the timed window.\n\n",
			o.publishers, o.payloadBytes, o.duration, o.warmup, o.rounds, inflight, edgeKind)
		fmt.Fprintln(w, "| Target | QoS | msg/s | Payload MB/s | Ratio to mochi | Server CPU | Core CPU | Client CPU | msg per server CPU-second |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, q := range o.qos {
			for _, name := range o.targets {
				rs := rep.throughput[runKey(name, q)]
				if len(rs) == 0 {
					continue
				}
				r := median(rs)
				el := r.elapsed
				server, perCPU, coreCPU := "", "", ""
				if r.serverCPU > 0 {
					server = fmt.Sprintf("%.2f", cores(r.serverCPU, el))
					perCPU = fmt.Sprintf("%.0f", float64(r.msgs)/r.serverCPU.Seconds())
				}
				if r.coreCPU > 0 {
					coreCPU = fmt.Sprintf("%.2f", cores(r.coreCPU, el))
				}
				fmt.Fprintf(w, "| %s | %d | %.0f | %.1f | %.2f | %s | %s | %.2f | %s |\n",
					targetLabels[name], q, r.rate(), r.rate()*float64(o.payloadBytes)/1e6, ratio(rep, name, q),
					server, coreCPU, cores(r.clientCPU, el), perCPU)
			}
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| Ratio | QoS | Measured | Target |")
		fmt.Fprintln(w, "|---|---:|---:|---:|")
		for _, q := range o.qos {
			for _, c := range []struct {
				name, target string
			}{{targetEdgeNever, "≥ 0.8"}, {targetEdgeAlways, "≥ 0.5"}, {targetMosquitto, "(comparison)"}} {
				if r := ratio(rep, c.name, q); r > 0 {
					t := c.target
					if q != 1 {
						t = "(QoS 0)"
					}
					fmt.Fprintf(w, "| %s / mochi | %d | %.2f | %s |\n", c.name, q, r, t)
				}
			}
		}
		fmt.Fprintln(w)
	}
	if len(rep.compression) > 0 {
		fmt.Fprintln(w, "Uplink compression (snappy, per lane): payload = MQTT payload bytes published and acknowledged; raw = fluxo_edge_uplink_raw_bytes_total (records before compression: key, value, headers); sent = fluxo_edge_uplink_sent_bytes_total. Target: sent / payload ≤ 0.33 for telemetry.")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| Run | Lane | Messages | Payload bytes | Raw bytes | Sent bytes | Sent / payload | Sent / raw |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|")
		for _, c := range rep.compression {
			for lane, l := range []string{"telemetry", "alarm"} {
				if c.msgs[lane] == 0 {
					continue
				}
				fmt.Fprintf(w, "| %s | %s | %d | %d | %.0f | %.0f | %.3f | %.3f |\n", c.run, l, c.msgs[lane], c.payload[lane],
					c.raw[lane], c.sent[lane], c.sent[lane]/float64(c.payload[lane]), c.sent[lane]/c.raw[lane])
			}
		}
		fmt.Fprintln(w)
		for _, c := range rep.compression {
			if len(c.estimates) == 0 {
				continue
			}
			fmt.Fprintf(w, "Other choices for the telemetry of \"%s\": the %d telemetry records of the timed window, as the consumer read them (headers included), re-encoded in batches of %.0f records (the uplink's mean) and compressed; the first row is what the uplink does.\n\n",
				c.run, c.sample, c.records[laneTelemetry]/c.batches[laneTelemetry])
			fmt.Fprintln(w, "| Codec | Sent / payload |")
			fmt.Fprintln(w, "|---|---:|")
			for _, e := range c.estimates {
				fmt.Fprintf(w, "| %s | %.3f |\n", e.name, float64(e.sent)/float64(e.payload))
			}
			fmt.Fprintln(w)
			break // the same traffic in the other latency run
		}
	}
	if rep.json != nil {
		fmt.Fprintf(w, "The json flood itself: %.0f msg/s.\n\n", rep.json.rate())
	}
	if len(rep.latency) > 0 {
		fmt.Fprintf(w, "Alarm latency: %d devices, %.0f msg/s in total at QoS 1 (each sends every %v and waits for its PUBACK), %.0f%% alarms, %v timed after %v; device → consumer = franz-go consumer's receive time − send time in the payload; the bare mochi server has no consumer, only PUBACKs. Target: alarm p99 ≤ 2 ms.\n\n",
			o.latencyDevices, o.latencyRate, time.Duration(float64(o.latencyDevices)/o.latencyRate*float64(time.Second)), 100*o.alarmShare, o.latencyDuration, o.warmup)
		q := func(h *hist.Hist, q float64) string {
			if h == nil || h.Count() == 0 {
				return ""
			}
			return fmtLatency(h.Quantile(q))
		}
		var mqttHop *hist.Hist
		for _, l := range rep.latency {
			if l.target == targetMochi {
				mqttHop = l.alarmAck
			}
		}
		f := rep.floors
		if f != nil {
			fmt.Fprintln(w, "Floors, measured in the same run: the parts an alarm's trip through the edge chains, each alone (the Kafka hop and the fdatasync at the alarm rate, with nothing else running). The edge's trip cannot beat their sum; the last column of the next table is its p99 over the sum of the floors' p99s (the fdatasync counted under always only).")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| Floor | p50 | p99 | max |")
			fmt.Fprintln(w, "|---|---:|---:|---:|")
			if mqttHop != nil {
				fmt.Fprintf(w, "| MQTT hop: bare mochi-mqtt, alarm PUBACK (the row below) | %s | %s | %s |\n", q(mqttHop, 0.5), q(mqttHop, 0.99), q(mqttHop, 1))
			}
			fmt.Fprintf(w, "| Kafka hop: franz-go producer (acks=all, no linger) → fluxo core → franz-go consumer | %s | %s | %s |\n", q(f.kafka, 0.5), q(f.kafka, 0.99), q(f.kafka, 1))
			fmt.Fprintf(w, "| fdatasync of 512 B in the spools' file system | %s | %s | %s |\n", q(f.fsync, 0.5), q(f.fsync, 0.99), q(f.fsync, 1))
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, "| Target | Alarms | Alarm → consumer p50 | p99 | max | Alarm PUBACK p50 | p99 | max | Telemetry → consumer p50 | p99 | PUBACKs slower than the send interval | Alarm p99 / floors |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, l := range rep.latency {
			ratio := ""
			if f != nil && mqttHop != nil && l.target != targetMochi && l.alarmE2E.Count() > 0 {
				floor := mqttHop.Quantile(0.99) + f.kafka.Quantile(0.99)
				if l.target == targetEdgeAlways {
					floor += f.fsync.Quantile(0.99)
				}
				ratio = fmt.Sprintf("%.2f", float64(l.alarmE2E.Quantile(0.99))/float64(floor))
			}
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n", targetLabels[l.target], l.alarmsSent,
				q(l.alarmE2E, 0.5), q(l.alarmE2E, 0.99), q(l.alarmE2E, 1),
				q(l.alarmAck, 0.5), q(l.alarmAck, 0.99), q(l.alarmAck, 1),
				q(l.telemetryE2E, 0.5), q(l.telemetryE2E, 0.99), l.lateTicks, ratio)
		}
		fmt.Fprintln(w)
	}
	if len(rep.uplink) > 0 {
		printUplink(w, o, rep.uplink)
	}
	if len(rep.registry) > 0 {
		printRegistry(w, o, rep.registry)
		fmt.Fprintln(w)
	}
	if len(rep.idle) > 0 {
		printIdle(w, o, rep.idle)
		fmt.Fprintln(w)
	}
	if len(rep.storm) > 0 {
		printStorm(w, o, rep.storm)
		fmt.Fprintln(w)
	}
	if len(rep.killed) > 0 {
		fmt.Fprintf(w, "Stopped with SIGQUIT or SIGKILL after not exiting on SIGTERM within their grace period (after their run was measured): %s.\n\n", strings.Join(rep.killed, ", "))
	}
	fmt.Fprintf(w, "Machine: nproc %d, CPU %s, %s/%s, Linux %s, %s, temp dir on %s.\n",
		runtime.NumCPU(), harness.CPUModel(), runtime.GOOS, runtime.GOARCH, harness.Kernel(), runtime.Version(), harness.FSType(o.dir))
}

// fmtLatency prints d in milliseconds with three significant digits.
func fmtLatency(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f ms", ms)
	}
}
