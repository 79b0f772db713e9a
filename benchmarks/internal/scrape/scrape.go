// Package scrape reads the Prometheus text format that fluxo nodes serve
// on /metrics: a sample per line, "name{labels} value", comments skipped.
package scrape

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// client waits longer than proc.HTTPClient: a server under a flood may
// take seconds to answer for its counts, and a count late is better than
// none.
var client = &http.Client{Timeout: 30 * time.Second}

// Get returns the body of a GET of url, an error unless it answers 200.
func Get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), nil
}

// Metrics is a scraped Prometheus text exposition: one sample per line.
type Metrics []Sample

// Sample is one line of an exposition.
type Sample struct {
	Name, Labels string // Labels: the text between the braces
	Value        float64
}

// Scrape gets url and parses it as the Prometheus text format.
func Scrape(ctx context.Context, url string) (Metrics, error) {
	body, err := Get(ctx, url)
	if err != nil {
		return nil, err
	}
	return Parse(body)
}

// Parse reads the samples of a Prometheus text exposition, one per line;
// comments and lines it cannot read are skipped.
func Parse(body string) (Metrics, error) {
	var m Metrics
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s, ok := parseLine(line)
		if !ok {
			continue
		}
		m = append(m, s)
	}
	return m, sc.Err()
}

// Sum adds the samples of the metric name whose labels contain label
// (e.g. `lane="telemetry"`; "" for all).
func (m Metrics) Sum(name, label string) float64 {
	var t float64
	for _, s := range m {
		if s.Name == name && strings.Contains(s.Labels, label) {
			t += s.Value
		}
	}
	return t
}

// parseLine reads "name value [timestamp]" or "name{labels} value
// [timestamp]"; ok is false for anything else.
func parseLine(line string) (s Sample, ok bool) {
	end := strings.IndexAny(line, "{ ")
	if end <= 0 {
		return s, false
	}
	s.Name, line = line[:end], line[end:]
	if line[0] == '{' {
		rb := strings.LastIndexByte(line, '}')
		if rb < 0 {
			return s, false
		}
		s.Labels, line = line[1:rb], line[rb+1:]
	}
	f := strings.Fields(line)
	if len(f) < 1 || len(f) > 2 {
		return s, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, false
	}
	s.Value = v
	return s, true
}
