package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot/vg"

	"github.com/fluxo-io/fluxo/benchmarks/peers/internal/chart"
)

// processes are the sampled processes, in the files' order.
var processes = []string{"edge", "core-1", "core-2", "core-3"}

// write writes soak.json, soak.csv (one row per sample and process) and
// soak.png into dir.
func write(dir string, res *result) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "soak.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "soak.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"t_s", "process", "up", "rss_mib", "rss_anon_mib", "goroutines", "open_files", "consumer_lag", "uplink_lag", "acked"})
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, s := range res.Samples {
		for _, p := range processes {
			ps := s.Procs[p]
			w.Write([]string{num(s.T), p, strconv.FormatBool(ps.Up), num(ps.RSSMiB), num(ps.AnonMiB), num(ps.Goroutines), num(ps.Files),
				num(s.ConsumerLag), num(s.UplinkLag), strconv.FormatInt(s.Acked, 10)})
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return plotSoak(filepath.Join(dir, "soak.png"), res)
}

// plotSoak draws four panels against minutes: anonymous RSS, goroutines,
// open files, and the lags.
func plotSoak(path string, res *result) error {
	mins := make([]float64, len(res.Samples))
	for i, s := range res.Samples {
		mins[i] = s.T / 60
	}
	perProc := func(get func(procSample) float64) []chart.Series {
		var out []chart.Series
		for _, p := range processes {
			y := make([]float64, len(res.Samples))
			for i, s := range res.Samples {
				ps := s.Procs[p]
				if !ps.Up {
					y[i] = math.NaN()
					continue
				}
				y[i] = get(ps)
			}
			out = append(out, chart.Series{Name: p, X: mins, Y: y})
		}
		return out
	}
	lag := make([]float64, len(res.Samples))
	up := make([]float64, len(res.Samples))
	for i, s := range res.Samples {
		lag[i] = s.ConsumerLag
		up[i] = s.UplinkLag
		if up[i] < 0 {
			up[i] = math.NaN()
		}
	}
	title := fmt.Sprintf("fluxo soak: %d devices, %d msg/s, %v (fit from minute %.0f)",
		res.Options.Devices, res.Options.Rate, res.Options.Duration, res.FitFromS/60)
	return chart.Save(path, 2, 12*vg.Centimeter, 8*vg.Centimeter,
		chart.Panel{Title: title, XLabel: "minutes", YLabel: "anonymous RSS (MiB)", Series: perProc(func(p procSample) float64 { return p.AnonMiB })},
		chart.Panel{Title: "goroutines", XLabel: "minutes", YLabel: "go_goroutines", Series: perProc(func(p procSample) float64 { return p.Goroutines })},
		chart.Panel{Title: "open files", XLabel: "minutes", YLabel: "/proc/PID/fd", Series: perProc(func(p procSample) float64 { return p.Files })},
		chart.Panel{Title: "lag", XLabel: "minutes", YLabel: "records", Series: []chart.Series{
			{Name: "consumer lag", X: mins, Y: lag}, {Name: "edge uplink lag", X: mins, Y: up}}},
	)
}
