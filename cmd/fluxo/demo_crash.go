package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/commitlog"
	"github.com/fluxo-io/fluxo/core/commitlog/crashtest"
)

type demoOptions struct {
	records   int
	syncEvery int
	keep      bool
	seed      uint64
	writerDir string // internal: run as the writer process
}

func newDemoCrashCmd() *cobra.Command {
	var o demoOptions
	c := &cobra.Command{
		Use:   "crash",
		Short: "Show the segment log surviving a crash: write, SIGKILL, power-cut, recover",
		Long: `Run the segment log's crash demo in a temporary directory, with no configuration:

  1. a writer process appends sensor readings to a log, fsyncing every
     --sync-every batches and reporting each fsync;
  2. the writer is killed with SIGKILL in the middle of writing;
  3. a power cut is simulated on top: the bytes written after the last fsync
     are cut at a random byte and a few of them are flipped;
  4. the log is reopened, and the demo prints what recovery found and checks
     that every record fsynced before the kill is there, intact, and that
     appends continue at the right offset.`,
		Example: `  fluxo demo crash
  fluxo demo crash --records 20000 --sync-every 10 --seed 7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.writerDir != "" {
				return demoWriter(cmd.Context(), o.writerDir, o.syncEvery, cmd.OutOrStdout())
			}
			return runDemo(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.IntVar(&o.records, "records", 5000, "records to write before the writer is killed")
	f.IntVar(&o.syncEvery, "sync-every", 20, "fsync every this many batches")
	f.BoolVar(&o.keep, "keep", false, "keep the data directory")
	f.Uint64Var(&o.seed, "seed", 0, "seed for the simulated power cut (0 = random)")
	f.StringVar(&o.writerDir, "writer-dir", "", "internal: run as the writer process")
	f.MarkHidden("writer-dir")
	return c
}

const demoRecordsPerBatch = 5

func demoLogConfig(syncEvery int) commitlog.Config {
	cfg := commitlog.DefaultConfig()
	cfg.SegmentBytes = 256 << 10 // small segments, so the demo rolls a few
	cfg.MaxBatchBytes = 64 << 10
	cfg.FlushBatches = syncEvery
	return cfg
}

// demoWriter appends batches of sensor readings forever, printing
// "synced <offset>" after each fsync and "wrote <offset>" after each append,
// until it is killed.
func demoWriter(ctx context.Context, dir string, syncEvery int, out io.Writer) error {
	l, err := commitlog.Open(dir, demoLogConfig(syncEvery))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	lastSynced := l.DurableOffset()
	for i := 0; ctx.Err() == nil; i++ {
		recs := make([]kmsg.Record, demoRecordsPerBatch)
		for j := range recs {
			n := i*demoRecordsPerBatch + j
			recs[j] = kmsg.Record{
				Key:   []byte(fmt.Sprintf("sensor-%03d", n%100)),
				Value: []byte(fmt.Sprintf(`{"seq":%d,"temperature_c":%.1f,"humidity_pct":%d}`, n, 18+float64(n%70)/10, 40+n%30)),
			}
		}
		res, err := l.Append(commitlog.AppendBatch(nil, commitlog.NoProducer(time.Now().UnixMilli()), recs))
		if err != nil {
			return err
		}
		l.SetHighWatermark(res.LastOffset + 1)
		fmt.Fprintf(w, "wrote %d\n", res.LastOffset+1)
		if d := l.DurableOffset(); d > lastSynced {
			lastSynced = d
			fmt.Fprintf(w, "synced %d\n", d)
		}
		w.Flush()
	}
	return l.Close()
}

func runDemo(ctx context.Context, o demoOptions, out io.Writer) error {
	if o.records < demoRecordsPerBatch || o.syncEvery < 1 {
		return errors.New("demo: --records must be at least 5 and --sync-every at least 1")
	}
	seed := o.seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	r := rand.New(rand.NewPCG(seed, 0))
	dir, err := os.MkdirTemp("", "fluxo-demo-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(out, "data directory: %s (kept)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	logDir := filepath.Join(dir, "sensors-0")

	fmt.Fprintf(out, "fluxo demo crash: the segment log through a crash (seed %d)\n\n", seed)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, self, "demo", "crash", "--writer-dir", logDir, "--sync-every", strconv.Itoa(o.syncEvery))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	fmt.Fprintf(out, "1. writer (pid %d) appends batches of %d sensor readings to %s, fsync every %d batches\n",
		cmd.Process.Pid, demoRecordsPerBatch, logDir, o.syncEvery)
	var wrote, synced int64
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		kind, v, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch kind {
		case "wrote":
			wrote = n
		case "synced":
			synced = n
		}
		if wrote >= int64(o.records) && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				return err
			}
			killed = true
			// Keep reading: the pipe still holds what the writer said
			// before it died.
		}
	}
	cmd.Wait()
	if wrote < int64(o.records) {
		return fmt.Errorf("demo: the writer stopped after %d records", wrote)
	}
	// A kill can land between an fsync and the line reporting it; the
	// log's own checkpoint, written right after each fsync, says more.
	if rp, ok := commitlog.RecoveryPoint(logDir); ok && rp > synced {
		synced = rp
	}
	fmt.Fprintf(out, "2. SIGKILL after %d records; fsyncs covered offsets below %d\n", wrote, synced)

	d, err := crashtest.CutTail(r, logDir, synced, 3)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cut := fmt.Sprintf("nothing unsynced in %s; left as is", filepath.Base(d.Region.Path))
	if d.Kind == crashtest.Cut {
		g := d.Region
		cut = fmt.Sprintf("%s cut at byte %d of %d written (the last %d bytes were never fsynced)",
			filepath.Base(g.Path), d.At, g.Written, g.Written-g.From)
	}
	flipped := d.Flipped
	fmt.Fprintf(out, "3. power cut: %s\n", cut)
	if flipped > 0 {
		fmt.Fprintf(out, "   and %d bytes flipped in the unsynced tail\n", flipped)
	}

	start := time.Now()
	l, err := commitlog.Open(logDir, demoLogConfig(o.syncEvery))
	if err != nil {
		return fmt.Errorf("demo: reopen: %w", err)
	}
	defer l.Close()
	took := time.Since(start)
	rec := l.Recovery()
	fmt.Fprintf(out, "4. reopened in %v: recovery point %d, %d segments, %d bytes scanned (CRCs checked past the recovery point)\n",
		took.Round(10*time.Microsecond), rec.RecoveryPoint, rec.Segments, rec.ScannedBytes)
	if rec.TornAtOffset >= 0 {
		fmt.Fprintf(out, "   torn tail cut at offset %d (%d damaged bytes dropped)\n", rec.TornAtOffset, rec.TornBytes)
	}
	if rec.SegmentsRemoved > 0 {
		fmt.Fprintf(out, "   %d later segments removed: they no longer continued the log\n", rec.SegmentsRemoved)
	}

	// Check: every record is valid, offsets are contiguous from 0, and
	// everything the writer saw fsynced is there.
	batches, err := crashtest.ReadAll(l)
	if err != nil {
		return fmt.Errorf("demo: check failed: %w", err)
	}
	var records, next int64
	for _, raw := range batches {
		b, _ := commitlog.ParseHeader(raw)
		next = b.NextOffset()
		records += int64(b.NumRecords)
	}
	if next < synced {
		return fmt.Errorf("demo: check failed: %d records readable, but %d were fsynced", next, synced)
	}
	fmt.Fprintf(out, "5. %d records readable, all valid, offsets 0..%d without gaps; all %d fsynced records intact\n",
		records, next-1, synced)
	res, err := l.Append(commitlog.AppendBatch(nil, commitlog.NoProducer(time.Now().UnixMilli()),
		[]kmsg.Record{{Key: []byte("sensor-000"), Value: []byte(`{"after":"recovery"}`)}}))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "6. the next append got offset %d: the log goes on where recovery ended\n", res.FirstOffset)
	return nil
}
