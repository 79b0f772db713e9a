package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// peerFlag is -peer NAME=PATH, repeatable: an MQTT server to measure
// next to the others, run as PATH -addr HOST:PORT -stats-addr HOST:PORT,
// which must serve MQTT on -addr and, on -stats-addr, /readyz and /stats
// (the number of PUBLISH packets received so far), as `bare-mochi` does.
// benchmarks/peers runs NATS's MQTT front this way.
type peerFlag map[string]string

func (p peerFlag) String() string {
	var s []string
	for k, v := range p {
		s = append(s, k+"="+v)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

func (p peerFlag) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want NAME=PATH, got %q", v)
	}
	switch name {
	case targetEdgeNever, targetEdgeAlways, targetMochi, targetMosquitto, idleEdge, idleEdgeNoRegistry:
		return fmt.Errorf("%q is a built-in target", name)
	}
	p[name] = path
	return nil
}

// startPeer starts a -peer server; it is measured as the bare mochi
// server is.
func startPeer(ctx context.Context, name, bin string) (*mochiTarget, error) {
	return startMochiBin(ctx, name, bin)
}

// raiseFileLimit raises this process's soft limit on open files to its
// hard limit; the servers it starts inherit it.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	return l.Cur, nil
}

// jsonReport is what -json writes: the figures of every phase that ran,
// for programs (benchmarks/peers plots them).
type jsonReport struct {
	Publishers   int              `json:"publishers"`
	PayloadBytes int              `json:"payload_bytes"`
	Inflight     int              `json:"inflight"`
	Warmup       string           `json:"warmup"`
	Duration     string           `json:"duration"`
	Throughput   []jsonThroughput `json:"throughput,omitempty"`
	Latency      []jsonLatency    `json:"latency,omitempty"`
	Floors       []jsonLatency    `json:"floors,omitempty"`
	Idle         []jsonIdle       `json:"idle,omitempty"`
	Killed       []string         `json:"killed,omitempty"`
}

// jsonThroughput is one target at one QoS: msg/s in each round.
type jsonThroughput struct {
	Target string    `json:"target"`
	QoS    int       `json:"qos"`
	Rates  []float64 `json:"msgs_per_s"`
	Median float64   `json:"median_msgs_per_s"`
	Errors int64     `json:"errors"`
}

// jsonLatency is a latency distribution as quantiles.
type jsonLatency struct {
	Target    string         `json:"target"`
	What      string         `json:"what"`
	Count     int64          `json:"count"`
	Quantiles []jsonQuantile `json:"quantiles"`
}

type jsonQuantile struct {
	Q  float64 `json:"q"`
	Ms float64 `json:"ms"`
}

// jsonIdle is a target's memory at each count of idle connections, in
// one round.
type jsonIdle struct {
	Target  string    `json:"target"`
	Round   int       `json:"round"`
	Conns   []int     `json:"conns"`
	RSSMiB  []float64 `json:"rss_mib"`
	AnonMiB []float64 `json:"rss_anon_mib"`
	FileMiB []float64 `json:"rss_file_mib"`
}

// cdfQuantiles are the quantiles -json gives of every distribution.
var cdfQuantiles = []float64{0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999}

func quantiles(h interface {
	Quantile(float64) time.Duration
	Count() int64
}, target, what string) jsonLatency {
	l := jsonLatency{Target: target, What: what, Count: h.Count()}
	for _, q := range cdfQuantiles {
		l.Quantiles = append(l.Quantiles, jsonQuantile{Q: q, Ms: float64(h.Quantile(q)) / float64(time.Millisecond)})
	}
	return l
}

// writeJSON writes rep to path.
func writeJSON(path string, o options, rep report) error {
	j := jsonReport{Publishers: o.publishers, PayloadBytes: o.payloadBytes, Inflight: o.inflight,
		Warmup: o.warmup.String(), Duration: o.duration.String(), Killed: rep.killed}
	for _, q := range o.qos {
		for _, name := range o.targets {
			rs := rep.throughput[runKey(name, q)]
			if len(rs) == 0 {
				continue
			}
			t := jsonThroughput{Target: name, QoS: int(q), Median: median(rs).rate()}
			for _, r := range rs {
				t.Rates = append(t.Rates, r.rate())
				t.Errors += r.errors
			}
			j.Throughput = append(j.Throughput, t)
		}
	}
	for _, l := range rep.latency {
		j.Latency = append(j.Latency, quantiles(l.alarmAck, l.target, "alarm PUBACK"))
		if l.alarmE2E.Count() > 0 {
			j.Latency = append(j.Latency, quantiles(l.alarmE2E, l.target, "alarm device to consumer"))
		}
	}
	if rep.floors != nil {
		j.Floors = append(j.Floors, quantiles(rep.floors.kafka, "", "Kafka hop (franz-go to core to franz-go)"),
			quantiles(rep.floors.fsync, "", "fdatasync"))
	}
	for _, r := range rep.idle {
		ji := jsonIdle{Target: r.target, Round: r.round, Conns: r.conns}
		for _, m := range r.mem {
			ji.RSSMiB = append(ji.RSSMiB, mib(m.RSS))
			ji.AnonMiB = append(ji.AnonMiB, mib(m.Anon))
			ji.FileMiB = append(ji.FileMiB, mib(m.File))
		}
		j.Idle = append(j.Idle, ji)
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
