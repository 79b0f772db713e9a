package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	dockerfile "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

const (
	imageUID     = 65532 // the image's user, and the pods' runAsUser
	imageDataDir = "/var/lib/fluxo"
)

// image is what the final stage of deploy/docker/Dockerfile sets.
type image struct {
	base       string
	user       string
	volumes    []string
	expose     []string
	entrypoint []string
	cmd        []string
	env        map[string]string
	copies     map[string]string // destination → source stage
	buildRuns  []string          // the RUN lines of the other stages
}

func readImage(t *testing.T) image {
	t.Helper()
	res, err := dockerfile.Parse(bytes.NewReader(readFile(t, "docker/Dockerfile")))
	if err != nil {
		t.Fatalf("docker/Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("docker/Dockerfile: %s", w.Short)
	}
	var lint []string
	l := linter.New(&linter.Config{Warn: func(rule, description, url, msg string, _ []dockerfile.Range) {
		lint = append(lint, rule+": "+msg)
	}})
	stages, _, err := instructions.Parse(res.AST, l)
	if err != nil {
		t.Fatalf("docker/Dockerfile: %v", err)
	}
	for _, w := range lint {
		t.Errorf("docker/Dockerfile: lint %s", w)
	}
	if len(stages) < 2 {
		t.Fatalf("docker/Dockerfile: got %d stages, want a build stage and a final one", len(stages))
	}
	img := image{env: make(map[string]string), copies: make(map[string]string)}
	for _, st := range stages[:len(stages)-1] {
		for _, c := range st.Commands {
			if run, ok := c.(*instructions.RunCommand); ok {
				img.buildRuns = append(img.buildRuns, strings.Join(run.CmdLine, " "))
			}
		}
	}
	final := stages[len(stages)-1]
	img.base = final.BaseName
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			img.user = c.User
		case *instructions.VolumeCommand:
			img.volumes = append(img.volumes, c.Volumes...)
		case *instructions.ExposeCommand:
			img.expose = append(img.expose, c.Ports...)
		case *instructions.EntrypointCommand:
			img.entrypoint = c.CmdLine
		case *instructions.CmdCommand:
			img.cmd = c.CmdLine
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				img.env[kv.Key] = kv.Value
			}
		case *instructions.CopyCommand:
			img.copies[c.DestPath] = c.From
		case *instructions.RunCommand:
			t.Errorf("docker/Dockerfile: final stage: got RUN %q, want none (there is no shell in it)", c.CmdLine)
		}
	}
	return img
}

func TestDockerfile(t *testing.T) {
	img := readImage(t)
	if img.base != "scratch" && !strings.HasPrefix(img.base, "gcr.io/distroless/static") {
		t.Errorf("final stage: got FROM %s, want scratch or distroless/static", img.base)
	}
	if got, want := img.user, fmt.Sprintf("%d:%d", imageUID, imageUID); got != want {
		t.Errorf("USER: got %q, want %q (not root; numeric, so Kubernetes' runAsNonRoot can check it)", got, want)
	}
	if !slices.Contains(img.volumes, imageDataDir) {
		t.Errorf("VOLUME: got %v, want %s", img.volumes, imageDataDir)
	}
	slices.Sort(img.expose)
	if got, want := strings.Join(img.expose, " "), "1883 8080 8081 9092 9093"; got != want {
		t.Errorf("EXPOSE: got %q, want %q (MQTT, core HTTP, edge HTTP, Kafka, Kafka over TLS)", got, want)
	}
	if len(img.entrypoint) != 1 || img.copies[img.entrypoint[0]] == "" {
		t.Errorf("ENTRYPOINT: got %q, want the binary COPY'd from the build stage (copied: %v)", img.entrypoint, sortedKeys(img.copies))
	}
	cmd, problems := commandTree(t).resolve(img.cmd)
	for _, p := range problems {
		t.Errorf("CMD %q: %s", img.cmd, p)
	}
	if cmd.path != "fluxo core" {
		t.Errorf("CMD: got %q, want fluxo core", cmd.path)
	}
	for name := range img.env {
		if !strings.HasPrefix(name, "FLUXO_") {
			continue
		}
		if _, ok := commandTree(t).allFlags()[strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "FLUXO_"), "_", "-"))]; !ok {
			t.Errorf("ENV %s: got no flag of fluxo that it sets", name)
		}
	}
	for _, dir := range []string{img.env["FLUXO_DATA_DIR"], img.env["FLUXO_SPOOL_DIR"]} {
		if !strings.HasPrefix(dir, imageDataDir+"/") {
			t.Errorf("ENV: data folder got %q, want one under the volume %s", dir, imageDataDir)
		}
	}
	build := strings.Join(img.buildRuns, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "main.version=", "main.commit=", "main.date=", "./cmd/fluxo"} {
		if !strings.Contains(build, want) {
			t.Errorf("build stage: got no %q in its RUN lines, want a static, stamped build like make pi's", want)
		}
	}
}

// The build context that Dockerfile.dockerignore leaves holds every package
// fluxo is built from: go list, run in a copy of it, finds them all.
func TestDockerBuildContext(t *testing.T) {
	f, err := os.Open(deployPath("docker/Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf("docker/Dockerfile.dockerignore: %v", err)
	}
	ctxDir := t.TempDir()
	var copied, size int64
	err = filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, path)
		if err != nil || rel == "." {
			return err
		}
		ignored, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		switch {
		case ignored && d.IsDir():
			return filepath.SkipDir
		case ignored || !d.Type().IsRegular() && !d.IsDir():
			return nil
		case d.IsDir():
			return os.MkdirAll(filepath.Join(ctxDir, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		copied++
		size += int64(len(b))
		return os.WriteFile(filepath.Join(ctxDir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build context: %d files, %d bytes", copied, size)
	if size > 20<<20 {
		t.Errorf("build context: got %d bytes, want less than 20 MiB (a binary not ignored?)", size)
	}
	list := exec.Command("go", "list", "-mod=readonly", "-deps", "-f", "{{if .Error}}{{.ImportPath}}: {{.Error}}{{end}}", "./cmd/fluxo")
	list.Dir = ctxDir
	list.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly")
	out, err := list.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("go list ./cmd/fluxo in the build context: got %v and\n%s\nwant every package there", err, out)
	}
}

// loadCompose loads deploy/docker/compose.yaml with compose-go, as docker
// compose does (interpolation, normalization, consistency checks).
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions(
		[]string{deployPath("docker/compose.yaml")},
		cli.WithWorkingDirectory(deployPath("docker")),
		cli.WithEnv(nil),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker/compose.yaml: %v", err)
	}
	return p
}

// isFluxoService reports whether a compose service runs the fluxo image.
func isFluxoService(s types.ServiceConfig) bool {
	return s.Build != nil && strings.HasSuffix(s.Build.Dockerfile, "Dockerfile") && strings.HasPrefix(s.Image, "fluxo:")
}

// flagValues returns the values of the --name=value and --name value flags
// in args, according to cmd (the last one wins).
func flagValues(cmd *command, args []string) map[string]string {
	values := make(map[string]string)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, value, ok := strings.Cut(a[2:], "=")
		takesValue := cmd.flags[name]
		switch {
		case ok:
		case takesValue && i+1 < len(args):
			i++
			value = args[i]
		default:
			value = "true"
		}
		values[name] = value
	}
	return values
}

// port returns the port of a HOST:PORT address, failing the test if it has
// none.
func port(t *testing.T, where, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(addr, "tcp://"), "http://"))
	if err != nil {
		t.Fatalf("%s: address %q: %v", where, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: address %q: %v", where, addr, err)
	}
	return n
}

func TestCompose(t *testing.T) {
	p := loadCompose(t)
	root := commandTree(t)

	// The services of a demo site.
	runs := make(map[string]string) // service → fluxo command
	flags := make(map[string]map[string]string)
	for name, s := range p.Services {
		if !isFluxoService(s) {
			continue
		}
		where := "docker/compose.yaml: service " + name
		if got, want := filepath.Clean(s.Build.Context), repoRoot; got != want {
			t.Errorf("%s: build context got %s, want the repository root %s", where, got, want)
		}
		if got, want := filepath.Clean(filepath.Join(s.Build.Context, s.Build.Dockerfile)), deployPath("docker/Dockerfile"); got != want {
			t.Errorf("%s: dockerfile got %s, want %s", where, got, want)
		}
		cmd, problems := root.resolve(s.Command)
		for _, pr := range problems {
			t.Errorf("%s: command %q: %s", where, s.Command, pr)
		}
		for env := range s.Environment {
			if _, ok := cmd.envFlag(env); strings.HasPrefix(env, "FLUXO_") && !ok {
				t.Errorf("%s: environment %s: got no flag of %s that it sets", where, env, cmd.path)
			}
		}
		runs[name] = cmd.path
		flags[name] = flagValues(cmd, s.Command)
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Target != imageDataDir && v.Target != shippedTLSDir {
				t.Errorf("%s: volume %s: got it mounted at %s, want %s (the image's VOLUME) or %s (certificates)", where, v.Source, v.Target, imageDataDir, shippedTLSDir)
			}
			if v.Target == shippedTLSDir && !v.ReadOnly {
				t.Errorf("%s: volume %s at %s: got it writable, want it read-only (only the certs service writes it)", where, v.Source, v.Target)
			}
		}
		if refs := certNames(strings.Join(s.Command, " ")); len(refs) > 0 && !mountsTLS(s) {
			t.Errorf("%s: names certificates %v, got no volume at %s, want the certs service's", where, refs, shippedTLSDir)
		}
	}
	var cores []string // the core services, by name
	for _, name := range sortedKeys(runs) {
		if runs[name] == "fluxo core" {
			cores = append(cores, name)
		}
	}
	if len(cores) != 3 {
		t.Errorf("docker/compose.yaml: got core services %v, want three (a cluster)", cores)
	}
	for service, want := range map[string]string{"edge": "fluxo edge", "devices": "fluxo devices"} {
		if got := runs[service]; got != want {
			t.Errorf("docker/compose.yaml: service %s runs %q, want %q", service, got, want)
		}
	}
	for _, name := range []string{"prometheus", "grafana"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("docker/compose.yaml: got no service %s, want one", name)
		}
	}
	if t.Failed() {
		return
	}

	// The brokers form one cluster: distinct node ids and volumes, each
	// advertising its service name for Kafka and Raft, all joining the
	// Serf addresses of all, waiting for all to bootstrap. Kafka is TLS
	// only, with client certificates, ACLs and the brokers (by their
	// certificates) super users; Raft is mutual TLS.
	var kafkaAddrs, serfAddrs, httpTargets []string
	ids := make(map[string]bool)
	volumes := make(map[string]string)
	for _, name := range cores {
		f := flags[name]
		where := "docker/compose.yaml: service " + name
		kafkaPort := sslListenerPort(t, where+" --listeners", f["listeners"])
		serfPort := port(t, where+" --serf-addr", f["serf-addr"])
		if got, want := f["advertised-listeners"], fmt.Sprintf("SSL://%s:%d", name, kafkaPort); got != want {
			t.Errorf("%s: --advertised-listeners got %q, want %q (the name the other containers reach it by)", where, got, want)
		}
		if f["kafka-addr"] != "" {
			t.Errorf("%s: --kafka-addr got %q, want none (a plaintext listener)", where, f["kafka-addr"])
		}
		for flag, want := range map[string]string{
			"inter-broker-listener": "SSL",
			"tls-client-auth":       "required",
			"authorizer":            "true",
			"tls-cert":              shippedTLSDir + "/" + name + ".pem",
			"tls-key":               shippedTLSDir + "/" + name + "-key.pem",
			"tls-ca":                shippedTLSDir + "/ca.pem",
			"cluster-tls-cert":      shippedTLSDir + "/" + name + ".pem",
			"cluster-tls-key":       shippedTLSDir + "/" + name + "-key.pem",
			"cluster-tls-ca":        shippedTLSDir + "/ca.pem",
		} {
			if got := f[flag]; got != want {
				t.Errorf("%s: --%s got %q, want %q", where, flag, got, want)
			}
		}
		for _, other := range cores {
			if !slices.Contains(strings.Split(f["super-users"], ";"), "User:CN="+other) {
				t.Errorf("%s: --super-users got %q, want User:CN=%s among them (brokers replicate as themselves)", where, f["super-users"], other)
			}
		}
		if got, want := f["raft-advertise"], fmt.Sprintf("%s:%d", name, port(t, where+" --raft-addr", f["raft-addr"])); got != want {
			t.Errorf("%s: --raft-advertise got %q, want %q", where, got, want)
		}
		if adv := f["serf-advertise"]; adv != "" {
			if host, _, err := net.SplitHostPort(adv); err != nil || net.ParseIP(host) == nil {
				t.Errorf("%s: --serf-advertise got %q, want none or an IP address (memberlist takes no name)", where, adv)
			}
		}
		if ids[f["node-id"]] || f["node-id"] == "" {
			t.Errorf("%s: --node-id got %q, want one of its own", where, f["node-id"])
		}
		ids[f["node-id"]] = true
		if got, want := f["bootstrap-expect"], strconv.Itoa(len(cores)); got != want {
			t.Errorf("%s: --bootstrap-expect got %q, want %s (the core services)", where, got, want)
		}
		for _, v := range p.Services[name].Volumes {
			if v.Type != types.VolumeTypeVolume || v.Target != imageDataDir {
				continue
			}
			if other, ok := volumes[v.Source]; ok {
				t.Errorf("%s: volume %s: got it shared with %s, want one per broker", where, v.Source, other)
			}
			volumes[v.Source] = name
		}
		kafkaAddrs = append(kafkaAddrs, fmt.Sprintf("%s:%d", name, kafkaPort))
		serfAddrs = append(serfAddrs, fmt.Sprintf("%s:%d", name, serfPort))
		httpTargets = append(httpTargets, fmt.Sprintf("%s:%d", name, port(t, where+" --http-addr", f["http-addr"])))
	}
	sameSet := func(a string, b []string) bool {
		got := strings.Split(a, ",")
		slices.Sort(got)
		return slices.Equal(got, b)
	}
	for _, name := range cores {
		if got := flags[name]["join"]; !sameSet(got, serfAddrs) {
			t.Errorf("docker/compose.yaml: service %s: --join got %q, want the Serf addresses of the three, %v", name, got, serfAddrs)
		}
	}

	// The pieces point at each other.
	edge, devices := flags["edge"], flags["devices"]
	if got := edge["core"]; !sameSet(got, kafkaAddrs) {
		t.Errorf("edge --core: got %q, want the brokers %v", got, kafkaAddrs)
	}
	if edge["core-tls-ca"] != shippedTLSDir+"/ca.pem" || edge["core-tls-cert"] == "" || edge["core-tls-key"] == "" {
		t.Errorf("edge: got --core-tls-ca %q, --core-tls-cert %q, --core-tls-key %q, want the CA and its client certificate", edge["core-tls-ca"], edge["core-tls-cert"], edge["core-tls-key"])
	}
	if got, want := devices["broker"], fmt.Sprintf("tcp://edge:%d", port(t, "edge --mqtt-addr", edge["mqtt-addr"])); got != want {
		t.Errorf("devices --broker: got %q, want %q", got, want)
	}
	for _, service := range append([]string{"edge"}, cores...) {
		want := map[string]int{"edge": 8081}[service]
		if want == 0 {
			want = 8080
		}
		if got := port(t, service+" --http-addr", flags[service]["http-addr"]); got != want {
			t.Errorf("%s --http-addr: port got %d, want %d", service, got, want)
		}
	}
	for _, s := range []string{"alarm-consumer"} {
		if got := flags[s]["brokers"]; !sameSet(got, kafkaAddrs) {
			t.Errorf("%s --brokers: got %q, want the brokers %v", s, got, kafkaAddrs)
		}
		if flags[s]["tls-ca"] != shippedTLSDir+"/ca.pem" || flags[s]["tls-cert"] == "" {
			t.Errorf("%s: got --tls-ca %q and --tls-cert %q, want the CA and its client certificate", s, flags[s]["tls-ca"], flags[s]["tls-cert"])
		}
	}

	// Prometheus scrapes the services by their names and HTTP ports: every
	// broker, so that one down is seen.
	wantTargets := map[string][]string{
		"fluxo-core": httpTargets,
		"fluxo-edge": {fmt.Sprintf("edge:%d", port(t, "edge --http-addr", edge["http-addr"]))},
	}
	for job, want := range wantTargets {
		var got []string
		for _, g := range scrapeTargets(t, job) {
			got = append(got, g.Targets...)
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("monitoring/prometheus.yml job %s: targets got %v, want %s (compose)", job, got, w)
			}
		}
	}

	// Prometheus and Grafana read the files of deploy/monitoring.
	mounts := func(service string) map[string]string {
		m := make(map[string]string)
		for _, v := range p.Services[service].Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s: bind mount source: %v", service, err)
				}
				m[v.Target] = v.Source
			}
		}
		return m
	}
	promMounts := mounts("prometheus")
	if got, want := promMounts["/etc/prometheus"], deployPath("monitoring"); got != want {
		t.Errorf("service prometheus: /etc/prometheus got %q, want %q", got, want)
	}
	if !slices.Contains(p.Services["prometheus"].Command, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("service prometheus: command got %q, want --config.file=/etc/prometheus/prometheus.yml", p.Services["prometheus"].Command)
	}
	grafanaMounts := mounts("grafana")
	for target, source := range map[string]string{
		"/etc/grafana/provisioning/datasources": deployPath("monitoring/grafana/provisioning/datasources"),
		"/etc/grafana/provisioning/dashboards":  deployPath("monitoring/grafana/provisioning/dashboards"),
	} {
		if got := grafanaMounts[target]; got != source {
			t.Errorf("service grafana: %s got %q, want %q", target, got, source)
		}
	}
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	mustYAML(t, "monitoring/grafana/provisioning/dashboards/fluxo.yml", &provider)
	if len(provider.Providers) == 0 || grafanaMounts[provider.Providers[0].Options.Path] != deployPath("monitoring/grafana/dashboards") {
		t.Errorf("service grafana: got mounts %v, want monitoring/grafana/dashboards at the provider's path", grafanaMounts)
	}
	var ds struct {
		Datasources []struct {
			URL string `json:"url"`
		} `json:"datasources"`
	}
	mustYAML(t, "monitoring/grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) == 0 || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("grafana data source: got %+v, want url http://prometheus:9090 (the compose service)", ds.Datasources)
	}
}

// mountsTLS reports whether a compose service mounts a volume at
// shippedTLSDir.
func mountsTLS(s types.ServiceConfig) bool {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == shippedTLSDir {
			return true
		}
	}
	return false
}

// sslListenerPort returns the port of listeners, which must be one SSL
// listener: deploy/ ships no plaintext Kafka listener.
func sslListenerPort(t *testing.T, where, listeners string) int {
	t.Helper()
	name, addr, ok := strings.Cut(listeners, "://")
	if !ok || name != "SSL" || strings.Contains(addr, ",") {
		t.Errorf("%s: got %q, want one SSL listener, SSL://HOST:PORT", where, listeners)
		return 0
	}
	return port(t, where, addr)
}
