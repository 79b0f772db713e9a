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

// procBroker is `fluxo core` running as a child process. The cluster run
// also kills it and starts it again, on the same ports and data; one
// goroutine at a time calls start, Kill and Stop.
type procBroker struct {
	name      string // "fluxo core", or "fluxo core <node id>" in a cluster
	bin       string
	args      []string
	kafkaAddr string
	readyURL  string
	grace     time.Duration // how long Stop waits after SIGTERM

	cmd     *exec.Cmd     // the current process
	exited  chan struct{} // closed once cmd.Wait returns
	waitErr error         // set before exited is closed
	killed  bool          // the current process was ended by Kill
}

// brokerShutdownTimeout is the --shutdown-timeout every broker runs with.
const brokerShutdownTimeout = 10 * time.Second

// startProcBroker starts `bin core` on free loopback ports with its data
// under dataDir and waits until /readyz answers 200.
func startProcBroker(ctx context.Context, bin, dataDir string) (*procBroker, error) {
	addrs, err := harness.FreeAddrs(4)
	if err != nil {
		return nil, err
	}
	b := newProcBroker("fluxo core", bin, addrs[0], addrs[1],
		"--data-dir", dataDir,
		"--kafka-addr", addrs[0],
		"--http-addr", addrs[1],
		"--serf-addr", addrs[2],
		"--raft-addr", addrs[3],
		"--auto-create-topics=false",
		"--shutdown-timeout", brokerShutdownTimeout.String(),
		"--log-level", "warn",
	)
	if err := b.start(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// newProcBroker describes `bin core args...` serving Kafka on kafkaAddr
// and HTTP on httpAddr; start runs it.
func newProcBroker(name, bin, kafkaAddr, httpAddr string, args ...string) *procBroker {
	return &procBroker{
		name:      name,
		bin:       bin,
		args:      append([]string{"core"}, args...),
		kafkaAddr: kafkaAddr,
		readyURL:  "http://" + httpAddr + "/readyz",
		grace:     brokerShutdownTimeout + 5*time.Second,
	}
}

// start runs the process and waits until /readyz answers 200; if it does
// not, the process is stopped.
func (b *procBroker) start(ctx context.Context) error {
	if b.running() {
		return fmt.Errorf("%s is already running", b.name)
	}
	cmd := exec.Command(b.bin, b.args...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	// Should this process die without stopping it, the kernel kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	b.cmd, b.exited, b.waitErr, b.killed = cmd, exited, nil, false
	go func() {
		b.waitErr = cmd.Wait()
		close(exited)
	}()
	if err := waitReady(ctx, b.readyURL, exited); err != nil {
		b.Stop(context.Background())
		return fmt.Errorf("%s: %w", b.name, err)
	}
	return nil
}

// running reports whether the process was started and has not exited.
func (b *procBroker) running() bool {
	if b.cmd == nil {
		return false
	}
	select {
	case <-b.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits until the process is gone. It returns when
// the signal was sent.
func (b *procBroker) Kill() (time.Time, error) {
	if !b.running() {
		return time.Time{}, fmt.Errorf("%s is not running", b.name)
	}
	at := time.Now()
	if err := b.cmd.Process.Kill(); err != nil {
		return at, err
	}
	b.killed = true
	<-b.exited
	return at, nil
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
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (b *procBroker) KafkaAddr() string { return b.kafkaAddr }

// Stop sends SIGTERM and waits for the process to exit; if it has not
// after the broker's own shutdown timeout (plus a margin) or ctx ends
// first, it is killed. A process that Kill ended is left as it is.
func (b *procBroker) Stop(ctx context.Context) error {
	if b.cmd == nil || (b.killed && !b.running()) {
		return nil
	}
	select {
	case <-b.exited:
		return fmt.Errorf("%s had already exited: %v", b.name, b.waitErr)
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
	return fmt.Errorf("%s did not stop after SIGTERM; killed", b.name)
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
