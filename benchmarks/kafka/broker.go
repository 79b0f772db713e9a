package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
	"github.com/fluxo-io/fluxo/core"
)

// broker is the fluxo core node under test.
type broker interface {
	// KafkaAddr is the address clients bootstrap from.
	KafkaAddr() string
	// Stop shuts the node down and waits for it, bounded by ctx.
	Stop(ctx context.Context) error
}

// procBroker is `fluxo core` running as a child process.
type procBroker struct {
	cmd       *exec.Cmd
	kafkaAddr string
	exited    chan struct{} // closed once cmd.Wait returns
	waitErr   error         // set before exited is closed
	grace     time.Duration // how long Stop waits after SIGTERM
}

// startProcBroker starts `bin core` on free loopback ports with its data
// under dataDir and waits until /readyz answers 200.
func startProcBroker(ctx context.Context, bin, dataDir string) (*procBroker, error) {
	addrs, err := harness.FreeAddrs(4)
	if err != nil {
		return nil, err
	}
	const shutdownTimeout = 10 * time.Second
	cmd := exec.Command(bin, "core",
		"--data-dir", dataDir,
		"--kafka-addr", addrs[0],
		"--http-addr", addrs[1],
		"--serf-addr", addrs[2],
		"--raft-addr", addrs[3],
		"--auto-create-topics=false",
		"--shutdown-timeout", shutdownTimeout.String(),
		"--log-level", "warn",
	)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	// Should this process die without stopping it, the kernel kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &procBroker{cmd: cmd, kafkaAddr: addrs[0], exited: make(chan struct{}), grace: shutdownTimeout + 5*time.Second}
	go func() {
		b.waitErr = cmd.Wait()
		close(b.exited)
	}()
	if err := waitReady(ctx, "http://"+addrs[1]+"/readyz", b.exited); err != nil {
		b.Stop(context.Background())
		return nil, err
	}
	return b, nil
}

// waitReady polls url until it answers 200, the process exits, ctx ends
// or 30 s pass.
func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("fluxo core exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("fluxo core not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (b *procBroker) KafkaAddr() string { return b.kafkaAddr }

// Stop sends SIGTERM and waits for the process to exit; if it has not
// after the broker's own shutdown timeout (plus a margin) or ctx ends
// first, it is killed.
func (b *procBroker) Stop(ctx context.Context) error {
	select {
	case <-b.exited:
		return fmt.Errorf("fluxo core had already exited: %v", b.waitErr)
	default:
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	timer := time.NewTimer(b.grace)
	defer timer.Stop()
	select {
	case <-b.exited:
		return b.waitErr
	case <-timer.C:
	case <-ctx.Done():
	}
	b.cmd.Process.Kill()
	<-b.exited
	return errors.New("fluxo core did not stop after SIGTERM; killed")
}

// nodeBroker is a core node in this process, for profiling the broker
// with runtime/pprof (the client's costs are in the same profile).
type nodeBroker struct{ n *core.Node }

func startNodeBroker(dataDir string) (*nodeBroker, error) {
	cfg := core.DefaultConfig()
	cfg.DataDir = dataDir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = ""
	cfg.Broker.AutoCreateTopics = false
	cfg.Broker.Log.RetentionAge = 7 * 24 * time.Hour // as `fluxo core`
	cfg.Logger = zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	n, err := core.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := n.Start(); err != nil {
		n.Shutdown(context.Background())
		return nil, err
	}
	return &nodeBroker{n: n}, nil
}

func (b *nodeBroker) KafkaAddr() string { return b.n.KafkaAddr() }

func (b *nodeBroker) Stop(ctx context.Context) error { return b.n.Shutdown(ctx) }
