package deploy

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	grafana "github.com/grafana/grafana-foundation-sdk/go/dashboard"
	grafanaprom "github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	promql "github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// query is a PromQL expression of the alert rules or the dashboard.
type query struct {
	where string // "alerts.yml FluxoBrokerDown", "dashboard panel 7 ..."
	expr  string
}

// selector is a series selector of a query: a metric name and the labels it
// is matched on.
type selector struct {
	where  string
	metric string
	labels []string
}

var parser = promql.NewParser(promql.Options{})

// selectors parses q and returns its series selectors.
func (q query) selectors() ([]selector, error) {
	expr, err := parser.ParseExpr(q.expr)
	if err != nil {
		return nil, fmt.Errorf("%s: %q: %w", q.where, q.expr, err)
	}
	var out []selector
	promql.Inspect(expr, func(node promql.Node, _ []promql.Node) error {
		vs, ok := node.(*promql.VectorSelector)
		if !ok {
			return nil
		}
		s := selector{where: q.where, metric: vs.Name}
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel {
				if s.metric == "" && m.Type == labels.MatchEqual {
					s.metric = m.Value
				}
				continue
			}
			s.labels = append(s.labels, m.Name)
		}
		out = append(out, s)
		return nil
	})
	return out, nil
}

// alertQueries returns the expressions of monitoring/alerts.yml, after
// checking the file with Prometheus's rule parser.
func alertQueries(t *testing.T) []query {
	t.Helper()
	groups, errs := rulefmt.ParseFile(deployPath("monitoring/alerts.yml"), false, model.LegacyValidation, parser, nil)
	for _, err := range errs {
		t.Errorf("monitoring/alerts.yml: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	var qs []query
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			qs = append(qs, query{where: "alerts.yml " + name, expr: r.Expr})
		}
	}
	return qs
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string            `json:"name"`
			Type       string            `json:"type"`
			Datasource grafanaDatasource `json:"datasource"`
			Query      struct {
				Query string `json:"query"`
			} `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int               `json:"id"`
	Type       string            `json:"type"`
	Title      string            `json:"title"`
	Datasource grafanaDatasource `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string             `json:"refId"`
		Expr       string             `json:"expr"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

const dashboardFile = "monitoring/grafana/dashboards/fluxo.json"

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readFile(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// grafanaVariable matches $name, ${name} and ${name:format}.
var grafanaVariable = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

// expandGrafana replaces Grafana's variables with values PromQL parses: a
// duration for the interval variables, a regular expression for the others.
func expandGrafana(expr string) string {
	return grafanaVariable.ReplaceAllStringFunc(expr, func(v string) string {
		name := strings.Trim(grafanaVariable.FindStringSubmatch(v)[0], "${}")
		name, _, _ = strings.Cut(name, ":")
		switch name {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		case "__interval_ms", "__range_ms":
			return "300000"
		case "__range_s":
			return "300"
		}
		return ".*"
	})
}

// labelValues matches Grafana's label_values(SELECTOR, LABEL).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// dashboardQueries returns the expressions of the dashboard's panels and
// variables, with Grafana's variables expanded.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	d := readDashboard(t)
	var qs []query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Query.Query)
		if m == nil {
			t.Errorf("%s: variable %s: got query %q, want label_values(SELECTOR, LABEL)", dashboardFile, v.Name, v.Query.Query)
			continue
		}
		qs = append(qs, query{where: "dashboard variable " + v.Name, expr: expandGrafana(m[1])})
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				qs = append(qs, query{
					where: fmt.Sprintf("dashboard panel %d %q %s", p.ID, p.Title, tg.RefID),
					expr:  expandGrafana(tg.Expr),
				})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return qs
}

func TestAlertRules(t *testing.T) {
	qs := alertQueries(t)
	if len(qs) == 0 {
		t.Fatal("monitoring/alerts.yml: got no rule, want some")
	}
	for _, q := range qs {
		if _, err := q.selectors(); err != nil {
			t.Error(err)
		}
	}

	// Each alert carries a severity and a summary.
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `json:"alert"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, "monitoring/alerts.yml"), &doc); err != nil {
		t.Fatal(err)
	}
	names := make(map[string]bool)
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("alert %s: severity got %q, want warning or critical", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: got annotations %v, want a summary and a description", r.Alert, sortedKeys(r.Annotations))
			}
			names[r.Alert] = true
		}
	}
	for _, want := range []string{"FluxoEdgeUplinkDown", "FluxoEdgeSpoolNearlyFull", "FluxoEdgeEvicting", "FluxoConsumerLagGrowing", "FluxoBrokerDown",
		"FluxoBrokerFailed", "FluxoNoController", "FluxoUnderReplicatedPartitions"} {
		if !names[want] {
			t.Errorf("monitoring/alerts.yml: got no alert %s, want it", want)
		}
	}
}

// The dashboard decodes strictly into Grafana's dashboard schema (the Go
// types of grafana-foundation-sdk, generated from Grafana's own), with the
// panel and query kinds it uses: a misspelt or misplaced field, a value of
// the wrong type or a missing required one is an error.
func TestDashboardSchema(t *testing.T) {
	rt := cog.NewRuntime()
	rt.RegisterPanelcfgVariant(timeseries.VariantConfig())
	rt.RegisterPanelcfgVariant(stat.VariantConfig())
	rt.RegisterDataqueryVariant(grafanaprom.VariantConfig())
	//lint:ignore SA1019 the file is a classic (v1) dashboard, the JSON Grafana's file provisioning reads
	var d grafana.Dashboard
	if err := d.UnmarshalJSONStrict(readFile(t, dashboardFile)); !noBuildErrors(err) {
		t.Errorf("%s: strict decoding: %v", dashboardFile, err)
	}
	if err := d.Validate(); !noBuildErrors(err) {
		t.Errorf("%s: %v", dashboardFile, err)
	}
}

// noBuildErrors reports whether err, from the Grafana SDK, holds no error:
// it returns its error list typed even when the list is empty.
func noBuildErrors(err error) bool {
	if errs, ok := err.(cog.BuildErrors); ok {
		return len(errs) == 0
	}
	return err == nil
}

func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: got uid %q and title %q, want both", dashboardFile, d.UID, d.Title)
	}
	uid := provisionedDatasourceUID(t)
	ids := make(map[int]bool)
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel %d %q: id used twice, want ids unique", p.ID, p.Title)
			}
			ids[p.ID] = true
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("panel %d %q: got no size (gridPos), want one", p.ID, p.Title)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %d %q: got no query, want one", p.ID, p.Title)
			}
			if p.Datasource.UID != uid {
				t.Errorf("panel %d %q: data source uid got %q, want %q (provisioned)", p.ID, p.Title, p.Datasource.UID, uid)
			}
			for _, tg := range p.Targets {
				if tg.Datasource != nil && tg.Datasource.UID != uid {
					t.Errorf("panel %d %q %s: data source uid got %q, want %q", p.ID, p.Title, tg.RefID, tg.Datasource.UID, uid)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type == "query" && v.Datasource.UID != uid {
			t.Errorf("variable %s: data source uid got %q, want %q", v.Name, v.Datasource.UID, uid)
		}
	}

	qs := dashboardQueries(t)
	for _, q := range qs {
		if _, err := q.selectors(); err != nil {
			t.Error(err)
		}
	}
	// What the dashboard is for.
	all := make([]string, len(qs))
	for i, q := range qs {
		all[i] = q.expr
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{
		"fluxo_core_records_in_total",                 // messages per second by topic
		"fluxo_edge_messages_total",                   // ... and by lane
		"fluxo_edge_spool_bytes",                      // spool backlog
		"fluxo_edge_uplink_batches_total",             // uplink batch size
		"fluxo_edge_uplink_sent_bytes_total",          // compression ratio
		"fluxo_core_partitions",                       // partitions
		"fluxo_kafka_request_duration_seconds_bucket", // request latency per API
		"fluxo_core_consumer_group_lag",               // consumer lag
		"fluxo_core_partitions_led",                   // partitions led per broker
		"fluxo_core_under_replicated_partitions",      // under-replicated partitions
		"fluxo_core_isr_shrinks_total",                // ISR shrinks
		"fluxo_cluster_raft_state",                    // Raft role per broker
		"fluxo_cluster_is_controller",                 // the controller
		"fluxo_cluster_members",                       // Serf members by status
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("%s: got no query on %s, want one", dashboardFile, want)
		}
	}
}

// provisionedDatasourceUID returns the uid of the data source that Grafana's
// provisioning file creates.
func provisionedDatasourceUID(t *testing.T) string {
	t.Helper()
	var doc struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name      string `json:"name"`
			UID       string `json:"uid"`
			Type      string `json:"type"`
			Access    string `json:"access"`
			URL       string `json:"url"`
			IsDefault bool   `json:"isDefault"`
			Editable  bool   `json:"editable"`
		} `json:"datasources"`
	}
	const file = "monitoring/grafana/provisioning/datasources/prometheus.yml"
	if err := yaml.UnmarshalStrict(readFile(t, file), &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(doc.Datasources) != 1 || doc.Datasources[0].Type != "prometheus" || doc.Datasources[0].UID == "" {
		t.Fatalf("%s: got %+v, want one prometheus data source with a uid", file, doc.Datasources)
	}
	return doc.Datasources[0].UID
}

// prometheusConfig is the part of prometheus.yml used here; decoding it
// strictly catches a misspelt key among them.
type prometheusConfig struct {
	Global struct {
		ScrapeInterval     string `json:"scrape_interval"`
		EvaluationInterval string `json:"evaluation_interval"`
	} `json:"global"`
	RuleFiles     []string `json:"rule_files"`
	ScrapeConfigs []struct {
		JobName        string `json:"job_name"`
		ScrapeInterval string `json:"scrape_interval"`
		MetricsPath    string `json:"metrics_path"`
		FileSDConfigs  []struct {
			Files []string `json:"files"`
		} `json:"file_sd_configs"`
		StaticConfigs []targetGroup `json:"static_configs"`
	} `json:"scrape_configs"`
}

type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

func readPrometheusConfig(t *testing.T) prometheusConfig {
	t.Helper()
	var c prometheusConfig
	if err := yaml.UnmarshalStrict(readFile(t, "monitoring/prometheus.yml"), &c); err != nil {
		t.Fatalf("monitoring/prometheus.yml: %v", err)
	}
	return c
}

// scrapeTargets returns the targets of a job of prometheus.yml, from its
// static and file-based configurations.
func scrapeTargets(t *testing.T, job string) []targetGroup {
	t.Helper()
	for _, sc := range readPrometheusConfig(t).ScrapeConfigs {
		if sc.JobName != job {
			continue
		}
		groups := append([]targetGroup(nil), sc.StaticConfigs...)
		for _, fsd := range sc.FileSDConfigs {
			for _, f := range fsd.Files {
				var tgs []targetGroup
				if err := yaml.UnmarshalStrict(readFile(t, "monitoring/"+f), &tgs); err != nil {
					t.Fatalf("monitoring/%s: %v", f, err)
				}
				groups = append(groups, tgs...)
			}
		}
		return groups
	}
	t.Fatalf("monitoring/prometheus.yml: got no job %s, want one", job)
	return nil
}

func TestPrometheusConfig(t *testing.T) {
	c := readPrometheusConfig(t)
	if got, want := strings.Join(c.RuleFiles, ","), "alerts.yml"; got != want {
		t.Errorf("rule_files: got %q, want %q", got, want)
	}
	for _, job := range []string{"fluxo-core", "fluxo-edge"} {
		groups := scrapeTargets(t, job)
		if len(groups) == 0 || len(groups[0].Targets) == 0 {
			t.Errorf("job %s: got no target, want some", job)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): not running promtool check")
	}
	for _, args := range [][]string{
		{"check", "config", deployPath("monitoring/prometheus.yml")},
		{"check", "rules", deployPath("monitoring/alerts.yml")},
		{"test", "rules", deployPath("monitoring/alerts_test.yml")},
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	var doc struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name                  string `json:"name"`
			Folder                string `json:"folder"`
			Type                  string `json:"type"`
			DisableDeletion       bool   `json:"disableDeletion"`
			AllowUIUpdates        bool   `json:"allowUiUpdates"`
			UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
			Options               struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	const file = "monitoring/grafana/provisioning/dashboards/fluxo.yml"
	if err := yaml.UnmarshalStrict(readFile(t, file), &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(doc.Providers) != 1 || doc.Providers[0].Type != "file" || doc.Providers[0].Options.Path == "" {
		t.Fatalf("%s: got %+v, want one file provider with a path", file, doc.Providers)
	}
	provisionedDatasourceUID(t)
}
