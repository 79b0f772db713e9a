package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/fluxo-io/fluxo/benchmarks/internal/harness"
	"github.com/fluxo-io/fluxo/core"
	"github.com/fluxo-io/fluxo/core/acl"
	"github.com/fluxo-io/fluxo/core/kafka"
)

// The two listeners of the -security run.
const (
	listenerPlain  = "PLAINTEXT"
	listenerSecure = "SASL_SSL"
)

// secureBroker is a core node with a PLAINTEXT and a SASL_SSL listener
// (harness.Security describes both).
type secureBroker interface {
	broker // KafkaAddr is the PLAINTEXT listener
	// SecureAddr is the SASL_SSL listener.
	SecureAddr() string
}

// secureProcBroker is `fluxo core` with both listeners.
type secureProcBroker struct {
	*procBroker
	secureAddr string
}

func (b *secureProcBroker) SecureAddr() string { return b.secureAddr }

// startSecureProcBroker starts `bin core` with the listeners of sec on
// free loopback ports and waits until /readyz answers 200.
func startSecureProcBroker(ctx context.Context, bin, dataDir string, sec *harness.Security) (*secureProcBroker, error) {
	addrs, err := harness.FreeAddrs(5)
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--data-dir", dataDir,
		"--http-addr", addrs[2],
		"--serf-addr", addrs[3],
		"--raft-addr", addrs[4],
		"--auto-create-topics=false",
		"--shutdown-timeout", brokerShutdownTimeout.String(),
		"--log-level", "warn",
	}, sec.CoreArgs(addrs[0], addrs[1])...)
	b := newProcBroker("fluxo core", bin, addrs[0], addrs[1], args...)
	b.readyURL = "http://" + addrs[2] + "/readyz"
	if err := b.start(ctx); err != nil {
		return nil, err
	}
	return &secureProcBroker{procBroker: b, secureAddr: addrs[1]}, nil
}

// secureNodeBroker is a core node in this process with both listeners,
// configured as `fluxo core` configures it from sec.CoreArgs.
type secureNodeBroker struct{ nodeBroker }

func (b *secureNodeBroker) KafkaAddr() string  { return b.n.KafkaListenerAddr(listenerPlain) }
func (b *secureNodeBroker) SecureAddr() string { return b.n.KafkaListenerAddr(listenerSecure) }

func startSecureNodeBroker(dataDir string, sec *harness.Security) (*secureNodeBroker, error) {
	serverTLS, _, err := kafka.ServerTLS(sec.CertPEM, sec.KeyPEM, sec.CAPEM, kafka.ClientAuthNone)
	if err != nil {
		return nil, err
	}
	cfg := core.DefaultConfig()
	cfg.DataDir = dataDir
	cfg.Listeners = []kafka.ListenerAddr{
		{Name: listenerPlain, Protocol: kafka.Plaintext, Addr: "127.0.0.1:0"},
		{Name: listenerSecure, Protocol: kafka.SASLSSL, Addr: "127.0.0.1:0"},
	}
	cfg.KafkaTLS = serverTLS
	cfg.Kafka.SASLMechanisms = []string{kafka.MechanismScramSHA512}
	cfg.Kafka.Authorizer = acl.NewAuthorizer([]string{acl.Anonymous})
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
	return &secureNodeBroker{nodeBroker{n: n}}, nil
}

// securityRun is one scenario run over one listener.
type securityRun struct {
	round    int
	listener string
	result
}

// runSecurity runs one scenario -rounds times over each listener of one
// core, PLAINTEXT then SASL_SSL in every round, and compares each SASL_SSL
// run with the PLAINTEXT run of its round.
func runSecurity(ctx context.Context, o options, stdout, stderr io.Writer) (err error) {
	scenarios, err := parseScenarios(o.securityScenario)
	if err != nil {
		return err
	}
	if len(scenarios) != 1 {
		return fmt.Errorf("-security-scenario: want one scenario, got %q", o.securityScenario)
	}
	s := scenarios[0]
	if o.valueSize < 1 || o.valueSize > 512<<10 || o.duration <= 0 || o.rounds < 1 {
		return fmt.Errorf("-duration must be positive, -rounds at least 1, -value-bytes between 1 and 512 KiB")
	}
	root, err := os.MkdirTemp(o.dir, "fluxo-kafka-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	sec, err := harness.NewSecurity(filepath.Join(root, "tls"))
	if err != nil {
		return err
	}

	var b secureBroker
	if o.inProcess {
		fmt.Fprintln(stderr, "starting a core node in process")
		if b, err = startSecureNodeBroker(filepath.Join(root, "data"), sec); err != nil {
			return err
		}
	} else {
		bin := o.fluxo
		if bin == "" {
			fmt.Fprintln(stderr, "building cmd/fluxo")
			if bin, err = harness.BuildFluxo(ctx, root); err != nil {
				return err
			}
		}
		fmt.Fprintln(stderr, "starting fluxo core")
		if b, err = startSecureProcBroker(ctx, bin, filepath.Join(root, "data"), sec); err != nil {
			return err
		}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if serr := b.Stop(sctx); serr != nil && err == nil {
			err = fmt.Errorf("stop broker: %w", serr)
		}
	}()
	fmt.Fprintf(stderr, "broker: %s on %s, %s on %s; data under %s\n", listenerPlain, b.KafkaAddr(), listenerSecure, b.SecureAddr(), root)
	if err := sec.AddUser(ctx, b.KafkaAddr(), b.SecureAddr(), "bench-"); err != nil {
		return err
	}

	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	admin := []string{b.KafkaAddr()}
	endpoints := []struct {
		listener string
		ep       endpoint
	}{
		{listenerPlain, endpoint{seeds: admin}},
		{listenerSecure, endpoint{seeds: []string{b.SecureAddr()}, opts: sec.ClientOpts()}},
	}
	lim := limits{duration: o.duration, records: o.records, warmup: o.warmup}
	pool := newPool()
	var runs []securityRun
	for round := range o.rounds {
		for _, e := range endpoints {
			if err := settle(ctx, o.settle); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "round %d, %s over %s: producing for %v\n", round+1, s.name(), e.listener, o.duration)
			topic := fmt.Sprintf("bench-%d-%s-%s", round, e.listener, s.name())
			r, err := runScenarioVia(ctx, admin, e.ep, topic, s, lim, pool, o.valueSize)
			if err != nil {
				return fmt.Errorf("round %d, %s over %s: %w", round+1, s.name(), e.listener, err)
			}
			fmt.Fprintf(stderr, "  produce %.1f MB/s (%d records, %.1f records/batch), p50 %v p99 %v; consume %.1f MB/s\n",
				r.mbps(), r.records, r.recordsPerBatch(), r.latency.Quantile(0.5), r.latency.Quantile(0.99), r.consumeMBps())
			runs = append(runs, securityRun{round: round + 1, listener: e.listener, result: r})
		}
	}
	if o.cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	printSecurityTable(stdout, o, s, runs)
	return nil
}

func printSecurityTable(w io.Writer, o options, s scenario, runs []securityRun) {
	broker := "`fluxo core` process"
	if o.inProcess {
		broker = "core node in process"
	}
	fmt.Fprintf(w, "Scenario %s (%d partition(s), acks=%s), %d B values, %v per run, %s with a %s and a %s (SCRAM-SHA-512 over TLS, ACLs checked) listener, runs alternating, %d rounds. MB = 10^6 bytes of record values.\n\n",
		s.name(), s.partitions, s.acks(), o.valueSize, o.duration, broker, listenerPlain, listenerSecure, o.rounds)
	fmt.Fprintln(w, "| Round | Listener | Produce MB/s | Records/s | p50 | p99 | Consume MB/s | Records/batch | Produce ratio | Consume ratio |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	var produceRatios, consumeRatios []float64
	var plain *securityRun
	for i := range runs {
		r := &runs[i]
		ratio, cratio := "", ""
		if r.listener == listenerPlain {
			plain = r
		} else if plain != nil && plain.round == r.round {
			pr, cr := r.mbps()/plain.mbps(), r.consumeMBps()/plain.consumeMBps()
			produceRatios = append(produceRatios, pr)
			consumeRatios = append(consumeRatios, cr)
			ratio, cratio = fmt.Sprintf("%.2f", pr), fmt.Sprintf("%.2f", cr)
		}
		fmt.Fprintf(w, "| %d | %s | %.1f | %.0f | %s | %s | %.1f | %.1f | %s | %s |\n",
			r.round, r.listener, r.mbps(), r.recordsPerSec(),
			fmtLatency(r.latency.Quantile(0.5)), fmtLatency(r.latency.Quantile(0.99)),
			r.consumeMBps(), r.recordsPerBatch(), ratio, cratio)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%s / %s produce: median %s; consume: median %s (over %d rounds).\n\n",
		listenerSecure, listenerPlain, spread(produceRatios), spread(consumeRatios), len(produceRatios))
	fmt.Fprintf(w, "Machine: nproc %d, CPU %s, %s/%s, Linux %s, %s, temp dir on %s.\n",
		runtime.NumCPU(), harness.CPUModel(), runtime.GOOS, runtime.GOARCH, harness.Kernel(), runtime.Version(), harness.FSType(o.dir))
}

// spread prints the median of xs and their range.
func spread(xs []float64) string {
	if len(xs) == 0 {
		return "none"
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", med, s[0], s[len(s)-1])
}
