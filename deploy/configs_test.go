package deploy

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// runConfig is the settings of one fluxo process that deploy/ describes.
type runConfig struct {
	where  string
	values map[string]any // flag → value
}

// edgeConfigs returns the settings of every edge node deploy/ runs: the
// systemd one, the Kubernetes one and the compose one.
func edgeConfigs(t *testing.T) []runConfig {
	t.Helper()
	out := []runConfig{{
		where:  "systemd/edge.yaml",
		values: checkConfig(t, "systemd/edge.yaml", readFile(t, "systemd/edge.yaml"), "edge"),
	}}
	m, _ := readK8s(t)
	for _, d := range m.deployments {
		out = append(out, runConfig{
			where:  "k8s Deployment " + d.Name,
			values: podConfig(t, "Deployment "+d.Name, &d.Spec.Template, m),
		})
	}
	p := loadCompose(t)
	s, ok := p.Services["edge"]
	if !ok {
		t.Fatal("docker/compose.yaml: got no service edge, want one")
	}
	cmd, _ := commandTree(t).resolve(s.Command)
	values := make(map[string]any)
	for k, v := range flagValues(cmd, s.Command) {
		values[k] = v
	}
	out = append(out, runConfig{where: "docker/compose.yaml service edge", values: values})
	return out
}

// valueString formats a configuration value as it would be typed on the
// command line.
func valueString(v any) string {
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case []any:
		parts := make([]string, len(v))
		for i, p := range v {
			parts[i] = valueString(p)
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(v)
	}
}
