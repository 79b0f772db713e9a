package deploy

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// exposition is what a /metrics page exposes: metric name → label names.
// A histogram or summary is there under its base name and under the names
// of its series (_bucket, _sum, _count).
type exposition map[string]map[string]bool

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)
)

// scrape reads the Prometheus text exposition at url.
func scrape(t *testing.T, url string) (exposition, map[string]float64) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: got %s, want 200\n%s", url, resp.Status, b)
	}
	exp := make(exposition)
	samples := make(map[string]float64) // "name{labels}" → value
	add := func(name string) map[string]bool {
		if exp[name] == nil {
			exp[name] = make(map[string]bool)
		}
		return exp[name]
	}
	types := make(map[string]string)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			add(f[2])
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "#") {
			continue
		}
		series := add(m[1])
		for _, lp := range labelPair.FindAllStringSubmatch(m[2], -1) {
			series[lp[1]] = true
		}
		if v, err := strconv.ParseFloat(m[3], 64); err == nil {
			samples[m[1]+m[2]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	// A histogram's or summary's labels, under its base name too.
	for name, typ := range types {
		if typ != "histogram" && typ != "summary" {
			continue
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			for l := range exp[name+suffix] {
				if l != "le" && l != "quantile" {
					exp[name][l] = true
				}
			}
		}
	}
	return exp, samples
}

// targetLabels are the labels Prometheus adds to every series it scrapes:
// job and instance, and site from monitoring/targets/*.yml.
var targetLabels = map[string]bool{"job": true, "instance": true, "site": true}

// Every metric in the alert rules and the dashboard, with every label they
// match it on, is exposed by a running core or edge, started as the systemd
// units start them (same configuration files), after some traffic: a fleet of
// simulated devices publishing to the edge, and a consumer group reading from
// the core.
func TestMetricsExist(t *testing.T) {
	var coreLaunch, edgeLaunch launch
	for _, l := range launches(t) {
		switch l.where {
		case "systemd fluxo-core.service":
			coreLaunch = l
		case "systemd fluxo-edge.service":
			edgeLaunch = l
		}
	}
	dir := t.TempDir()
	// The certificates the settings name, from one CA; the admin's too,
	// to add the edge's ACLs and read as a super user.
	edgeCerts := certNames(edgeLaunch.settingsText(t))
	if len(edgeCerts) != 1 {
		t.Fatalf("systemd edge: got certificates %v, want its client certificate", edgeCerts)
	}
	coreLaunch, edgeLaunch = coreLaunch.withTLS(t, dir), edgeLaunch.withTLS(t, dir)
	coreAddrs, edgeAddrs := newAddrs(t), newAddrs(t)
	coreArgs := coreLaunch.localArgs(t, dir, coreAddrs, "", "")
	users, user, password := deviceUsers(t, edgeLaunch.users)
	edgeArgs := edgeLaunch.localArgs(t, dir, edgeAddrs, coreAddrs.kafka, users)

	site := &testCluster{name: "systemd", addrs: []addrs{coreAddrs}, tls: dir}
	admin := site.clientFlags(t, "admin")
	// The edge's ACLs, added as the admin once the core runs.
	grant := func() { grantEdge(t, admin, "User:CN="+edgeCerts[0]) }

	// Where strace and systemd-analyze are installed, the processes run
	// traced, and what they did is checked against the units' sandbox.
	strace, errStrace := exec.LookPath("strace")
	analyze, errAnalyze := exec.LookPath("systemd-analyze")
	traced := errStrace == nil && errAnalyze == nil
	var core, edge *process
	coreTrace, edgeTrace := filepath.Join(dir, "core.trace"), filepath.Join(dir, "edge.trace")
	if traced {
		core = startTraced(t, "core", coreAddrs.http, strace, coreTrace, coreArgs...)
		grant()
		edge = startTraced(t, "edge", edgeAddrs.http, strace, edgeTrace, edgeArgs...)
	} else {
		t.Log("strace or systemd-analyze not installed: not checking the units' system call filter")
		core = startFluxo(t, "core", coreAddrs.http, nil, coreArgs...)
		grant()
		edge = startFluxo(t, "edge", edgeAddrs.http, nil, edgeArgs...)
	}

	devices := exec.Command(fluxoBin, "devices", "--broker", "tcp://"+edgeAddrs.mqtt, "--username", user,
		"--sensors", "4", "--cars", "2", "--panels", "2", "--rate", "5", "--alarm-rate", "4", "--duration", "3s")
	devices.Env = append(os.Environ(), "FLUXO_PASSWORD="+password)
	if out, err := devices.CombinedOutput(); err != nil {
		t.Fatalf("fluxo devices: %v\n%s\nedge:\n%s", err, out, edge.output())
	}
	for topic, count := range map[string]string{"telemetry": "5", "alarms": "1"} {
		consume := exec.Command(fluxoBin, append(append([]string{"consume", topic}, admin...), "--group", "deploy-test",
			"--from-beginning", "--count", count, "--timeout", "20s")...)
		if out, err := consume.CombinedOutput(); err != nil {
			t.Fatalf("fluxo consume %s --group deploy-test: %v\n%s\ncore:\n%s\nedge:\n%s", topic, err, out, core.output(), edge.output())
		}
	}

	coreExp, coreSamples := scrape(t, "http://"+coreAddrs.http+"/metrics")
	edgeExp, _ := scrape(t, "http://"+edgeAddrs.http+"/metrics")
	if v := coreSamples[`fluxo_core_records_in_total{topic="alarms"}`]; v == 0 {
		t.Errorf("core: fluxo_core_records_in_total{topic=\"alarms\"} got %v, want the alarms the edge forwarded", v)
	}
	exposed := exposition{"up": {}} // Prometheus's own, per target
	for _, exp := range []exposition{coreExp, edgeExp} {
		for name, ls := range exp {
			if exposed[name] == nil {
				exposed[name] = make(map[string]bool)
			}
			for l := range ls {
				exposed[name][l] = true
			}
		}
	}

	qs := append(alertQueries(t), dashboardQueries(t)...)
	var checked int
	for _, q := range qs {
		sels, err := q.selectors()
		if err != nil {
			t.Error(err)
			continue
		}
		for _, s := range sels {
			checked++
			ls, ok := exposed[s.metric]
			if !ok {
				t.Errorf("%s: metric %s: got none such on a running core or edge, want it exposed (%s)", s.where, s.metric, q.expr)
				continue
			}
			for _, l := range s.labels {
				if !ls[l] && !targetLabels[l] {
					t.Errorf("%s: metric %s: label %q: got labels %v, want it among them", s.where, s.metric, l, sortedKeys(ls))
				}
			}
		}
	}
	t.Logf("%d series selectors in %d queries checked against %d exposed metrics", checked, len(qs), len(exposed))

	edge.stop(t)
	core.stop(t)
	if traced {
		checkSandbox(t, analyze, "fluxo-core.service", coreTrace)
		checkSandbox(t, analyze, "fluxo-edge.service", edgeTrace)
	}
}

func TestScrapeParser(t *testing.T) {
	page := `# HELP x_seconds A histogram.
# TYPE x_seconds histogram
x_seconds_bucket{api="Fetch",le="0.1"} 1
x_seconds_sum{api="Fetch"} 0.05
x_seconds_count{api="Fetch"} 1
# TYPE y gauge
y{lane="alarm",note="a \"quoted\", value"} 2
z 3
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, page)
	}))
	defer srv.Close()
	exp, samples := scrape(t, srv.URL+"/metrics")
	for name, want := range map[string]string{
		"x_seconds":        "api",
		"x_seconds_bucket": "api,le",
		"x_seconds_count":  "api",
		"y":                "lane,note",
		"z":                "",
	} {
		if got := strings.Join(sortedKeys(exp[name]), ","); got != want {
			t.Errorf("labels of %s: got %q, want %q", name, got, want)
		}
	}
	if got, want := samples[`z`], 3.0; got != want {
		t.Errorf("sample z: got %v, want %v", got, want)
	}
}
