package main

import (
	"context"
	"time"

	"github.com/fluxo-io/fluxo/benchmarks/internal/proc"
	"github.com/fluxo-io/fluxo/benchmarks/internal/scrape"
)

// server is a child process, a fluxo core or edge, with its HTTP address
// (/readyz, /metrics); benchmarks/internal/proc runs it.
type server struct {
	*proc.Proc
	http string
}

// startServer starts bin with args and waits for its /readyz; it is
// stopped if it does not get ready.
func startServer(ctx context.Context, name, httpAddr, bin string, args ...string) (*server, error) {
	p, err := proc.Start(name, 15*time.Second, bin, args...)
	if err != nil {
		return nil, err
	}
	if err := proc.WaitHTTP(ctx, p, "http://"+httpAddr+"/readyz"); err != nil {
		p.Stop(context.Background())
		return nil, err
	}
	return &server{Proc: p, http: httpAddr}, nil
}

// stop sends SIGTERM and waits 15 s for the exit, then kills; a process
// that had already exited is left as it is.
func (s *server) stop() { s.Stop(context.Background()) }

// metrics scrapes the server's /metrics into series → value.
func (s *server) metrics(ctx context.Context) (metrics, error) {
	sm, err := scrape.Scrape(ctx, "http://"+s.http+"/metrics")
	if err != nil {
		return nil, err
	}
	m := make(metrics, len(sm))
	for _, x := range sm {
		k := x.Name
		if x.Labels != "" {
			k += "{" + x.Labels + "}"
		}
		m[k] = x.Value
	}
	return m, nil
}

// metrics is a scraped /metrics: series (name{labels}, as exposed) → value.
type metrics map[string]float64

// lane is the value of an edge series of one lane.
func (m metrics) lane(name, lane string) float64 { return m[name+`{lane="`+lane+`"}`] }
