// Command soak runs the demo's fleet of simulated devices against a real
// edge and a three-broker core (bin/fluxo processes on 127.0.0.1) for a
// long while, restarts one core broker and the edge on the way, and
// checks that nothing leaks and nothing is lost:
//
//   - every -interval it records each process's RSS (and anonymous RSS),
//     goroutines (go_goroutines from its /metrics), open files
//     (/proc/PID/fd), the consumer lag of a reader of the core topics and
//     the edge's uplink lag, into soak.json and soak.csv, and draws
//     soak.png;
//
//   - after the run it fits a least-squares line over the last two thirds
//     of each process's samples (the restarts happen in the first fifth)
//     and fails if anonymous RSS, goroutines or open files grow faster
//     and further than the bounds (-rss-bound and friends; see fit.go);
//
//   - it reads the core topics from the start and fails if a message the
//     devices published is missing or there twice: the devices publish
//     at QoS 1 and number their messages (device id, seq).
//
//     go run ./soak -duration 30m -out results/soak
//
// make soak runs it with SOAK_DURATION (30m by default); make soak-check
// runs the two-minute test of soak_test.go (build tag soak).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	o := defaultOptions()
	flag.DurationVar(&o.Duration, "duration", o.Duration, "how long the devices publish")
	flag.DurationVar(&o.Interval, "interval", o.Interval, "time between samples")
	flag.IntVar(&o.Rate, "rate", o.Rate, "messages per second of the whole fleet")
	flag.IntVar(&o.Devices, "devices", o.Devices, "devices in the fleet: 40% sensors, 40% cars, 20% alarm panels")
	flag.StringVar(&o.Fluxo, "fluxo", "", "fluxo binary (default: build ./cmd/fluxo)")
	flag.StringVar(&o.Out, "out", "soak-results", "directory for soak.json, soak.csv and soak.png")
	flag.StringVar(&o.Dir, "dir", os.TempDir(), "parent of the temporary directory for the nodes' data")
	flag.Float64Var(&o.Bounds.RSS.PerHour, "rss-bound", o.Bounds.RSS.PerHour, "leak bound: anonymous RSS slope, MiB per hour")
	flag.Float64Var(&o.Bounds.RSS.Floor, "rss-floor", o.Bounds.RSS.Floor, "leak bound: anonymous RSS growth over the fitted window, MiB")
	flag.Float64Var(&o.Bounds.Goroutines.PerHour, "goroutines-bound", o.Bounds.Goroutines.PerHour, "leak bound: goroutines slope per hour")
	flag.Float64Var(&o.Bounds.Goroutines.Floor, "goroutines-floor", o.Bounds.Goroutines.Floor, "leak bound: goroutine growth over the fitted window")
	flag.Float64Var(&o.Bounds.Files.PerHour, "fds-bound", o.Bounds.Files.PerHour, "leak bound: open files slope per hour")
	flag.Float64Var(&o.Bounds.Files.Floor, "fds-floor", o.Bounds.Files.Floor, "leak bound: open file growth over the fitted window")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o, os.Stderr)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "soak: passed")
}

// waitCtx waits d or until ctx ends.
func waitCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
