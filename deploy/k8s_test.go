package deploy

import (
	"bytes"
	"fmt"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// manifests is the objects of a set of Kubernetes manifests, by kind.
type manifests struct {
	namespaces   []*corev1.Namespace
	configMaps   []*corev1.ConfigMap
	secrets      []*corev1.Secret
	services     []*corev1.Service
	pvcs         []*corev1.PersistentVolumeClaim
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment
	pdbs         []*policyv1.PodDisruptionBudget
}

// documentSeparator splits a YAML stream into documents.
var documentSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decodeManifests decodes every document of a YAML stream strictly into its
// typed Kubernetes object: an unknown or misspelt field is an error.
func decodeManifests(t *testing.T, where string, stream []byte, into *manifests) {
	t.Helper()
	for i, doc := range documentSeparator.Split(string(stream), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Errorf("%s: document %d: %v", where, i+1, err)
			continue
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			o := new(corev1.Namespace)
			into.namespaces, obj = append(into.namespaces, o), o
		case "v1 ConfigMap":
			o := new(corev1.ConfigMap)
			into.configMaps, obj = append(into.configMaps, o), o
		case "v1 Secret":
			o := new(corev1.Secret)
			into.secrets, obj = append(into.secrets, o), o
		case "v1 Service":
			o := new(corev1.Service)
			into.services, obj = append(into.services, o), o
		case "v1 PersistentVolumeClaim":
			o := new(corev1.PersistentVolumeClaim)
			into.pvcs, obj = append(into.pvcs, o), o
		case "apps/v1 StatefulSet":
			o := new(appsv1.StatefulSet)
			into.statefulSets, obj = append(into.statefulSets, o), o
		case "apps/v1 Deployment":
			o := new(appsv1.Deployment)
			into.deployments, obj = append(into.deployments, o), o
		case "policy/v1 PodDisruptionBudget":
			o := new(policyv1.PodDisruptionBudget)
			into.pdbs, obj = append(into.pdbs, o), o
		default:
			t.Errorf("%s: document %d: got %s %s, want a kind this test knows", where, i+1, tm.APIVersion, tm.Kind)
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Errorf("%s: document %d (%s): %v", where, i+1, tm.Kind, err)
		}
	}
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// kustomization is deploy/k8s/kustomization.yaml, decoded strictly.
type kustomization struct {
	APIVersion      string   `json:"apiVersion"`
	Kind            string   `json:"kind"`
	Resources       []string `json:"resources"`
	SecretGenerator []struct {
		Name      string   `json:"name"`
		Namespace string   `json:"namespace"`
		Files     []string `json:"files"`
		Options   struct {
			DisableNameSuffixHash bool `json:"disableNameSuffixHash"`
		} `json:"options"`
	} `json:"secretGenerator"`
}

// readK8s decodes the files kustomization.yaml lists.
func readK8s(t *testing.T) (manifests, kustomization) {
	t.Helper()
	var k kustomization
	if err := yaml.UnmarshalStrict(readFile(t, "k8s/kustomization.yaml"), &k); err != nil {
		t.Fatalf("k8s/kustomization.yaml: %v", err)
	}
	var m manifests
	for _, r := range k.Resources {
		decodeManifests(t, "k8s/"+r, readFile(t, "k8s/"+r), &m)
	}
	return m, k
}

// podTemplates returns the workloads' pod templates, by workload name.
func (m manifests) podTemplates() map[string]*corev1.PodTemplateSpec {
	pts := make(map[string]*corev1.PodTemplateSpec)
	for _, s := range m.statefulSets {
		pts["StatefulSet "+s.Name] = &s.Spec.Template
	}
	for _, d := range m.deployments {
		pts["Deployment "+d.Name] = &d.Spec.Template
	}
	return pts
}

func (m manifests) configMap(name string) *corev1.ConfigMap {
	for _, c := range m.configMaps {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (m manifests) service(name string) *corev1.Service {
	for _, s := range m.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// containerPort returns the port of a container named name.
func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func TestKubernetesManifests(t *testing.T) {
	m, k := readK8s(t)
	if len(m.statefulSets) != 1 || len(m.deployments) != 1 || len(m.pdbs) != 1 {
		t.Fatalf("k8s: got %d StatefulSets, %d Deployments, %d PodDisruptionBudgets, want 1 each",
			len(m.statefulSets), len(m.deployments), len(m.pdbs))
	}
	for _, obj := range m.all() {
		if obj.GetNamespace() != "fluxo" && obj.GetName() != "fluxo" {
			t.Errorf("%s: namespace got %q, want fluxo", obj.GetName(), obj.GetNamespace())
		}
	}

	// The core: a StatefulSet behind a headless Service, one volume each.
	sts := m.statefulSets[0]
	headless := m.service(sts.Spec.ServiceName)
	if headless == nil || headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("StatefulSet %s: serviceName got %q, want a headless Service (clusterIP: None)", sts.Name, sts.Spec.ServiceName)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Errorf("StatefulSet %s: got %d volume claim templates, want one named data", sts.Name, len(sts.Spec.VolumeClaimTemplates))
	}
	if got := m.pdbs[0].Spec.Selector; got == nil || !selects(t, got, sts.Spec.Template.Labels) {
		t.Errorf("PodDisruptionBudget %s: selector %v: got no match for the core's pods %v, want one", m.pdbs[0].Name, got, sts.Spec.Template.Labels)
	}

	// Every workload: its selector picks its pods; probes, ports, volumes
	// and security as the image and fluxo expect.
	for name, pt := range m.podTemplates() {
		var sel *metav1.LabelSelector
		if strings.HasPrefix(name, "StatefulSet") {
			sel = sts.Spec.Selector
		} else {
			sel = m.deployments[0].Spec.Selector
		}
		if !selects(t, sel, pt.Labels) {
			t.Errorf("%s: selector %v: got no match for its pods' labels %v, want one", name, sel, pt.Labels)
		}
		checkPod(t, name, pt, m)
	}

	// Every Service selects some pods and targets their named ports.
	for _, svc := range m.services {
		var found bool
		for name, pt := range m.podTemplates() {
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pt.Labels)) {
				continue
			}
			found = true
			for _, p := range svc.Spec.Ports {
				if containerPort(pt.Spec.Containers[0], p.TargetPort.StrVal) == 0 {
					t.Errorf("Service %s: port %s: got targetPort %q, want a port named in %s's container", svc.Name, p.Name, p.TargetPort.String(), name)
				}
			}
		}
		if !found {
			t.Errorf("Service %s: selector %v: got no workload's pods selected, want some", svc.Name, svc.Spec.Selector)
		}
	}

	// The kustomization's secret generator makes the users file the edge
	// reads.
	if len(k.SecretGenerator) != 1 || len(k.SecretGenerator[0].Files) != 1 {
		t.Fatalf("k8s/kustomization.yaml: got %d secret generators, want one with one file", len(k.SecretGenerator))
	}
	key, file, _ := strings.Cut(k.SecretGenerator[0].Files[0], "=")
	readFile(t, "k8s/"+file)
	if !k.SecretGenerator[0].Options.DisableNameSuffixHash {
		t.Errorf("k8s/kustomization.yaml: got a hash suffix on the secret's name, which the Deployment does not know, want disableNameSuffixHash")
	}
	var projected bool
	for _, v := range m.deployments[0].Spec.Template.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.Secret != nil && s.Secret.Name == k.SecretGenerator[0].Name {
				projected = true
			}
		}
	}
	if !projected {
		t.Errorf("Deployment %s: got no projected volume from the Secret %s, want one", m.deployments[0].Name, k.SecretGenerator[0].Name)
	}
	if key != "users.yaml" {
		t.Errorf("k8s/kustomization.yaml: secret key got %q, want users.yaml", key)
	}
}

// all returns the objects' metadata.
func (m manifests) all() []metav1.Object {
	var out []metav1.Object
	for _, o := range m.namespaces {
		out = append(out, o)
	}
	for _, o := range m.configMaps {
		out = append(out, o)
	}
	for _, o := range m.secrets {
		out = append(out, o)
	}
	for _, o := range m.services {
		out = append(out, o)
	}
	for _, o := range m.pvcs {
		out = append(out, o)
	}
	for _, o := range m.statefulSets {
		out = append(out, o)
	}
	for _, o := range m.deployments {
		out = append(out, o)
	}
	for _, o := range m.pdbs {
		out = append(out, o)
	}
	return out
}

func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

// checkPod checks a workload's pod: fluxo's flags and environment, the
// configuration file it mounts, probes, ports and security.
func checkPod(t *testing.T, name string, pt *corev1.PodTemplateSpec, m manifests) {
	t.Helper()
	if len(pt.Spec.Containers) != 1 {
		t.Fatalf("%s: got %d containers, want 1", name, len(pt.Spec.Containers))
	}
	c := pt.Spec.Containers[0]
	cmd, problems := commandTree(t).resolve(c.Args)
	for _, p := range problems {
		t.Errorf("%s: args %q: %s", name, c.Args, p)
	}
	for _, e := range c.Env {
		if _, ok := cmd.envFlag(e.Name); strings.HasPrefix(e.Name, "FLUXO_") && !ok {
			t.Errorf("%s: env %s: got no flag of %s that it sets", name, e.Name, cmd.path)
		}
	}
	values := podConfig(t, name, pt, m)
	role := strings.TrimPrefix(cmd.path, "fluxo ")

	// Probes on the HTTP port fluxo listens on.
	httpPort := containerPort(c, "http")
	if addr, _ := values["http-addr"].(string); addr == "" || port(t, name+" http-addr", addr) != int(httpPort) {
		t.Errorf("%s: http-addr got %v, want the container port named http (%d)", name, values["http-addr"], httpPort)
	}
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
			t.Errorf("%s: %s probe got %+v, want GET %s on port http", name, p.kind, p.probe, p.path)
		}
	}
	if got, want := pt.Annotations["prometheus.io/port"], strconv.Itoa(int(httpPort)); got != want {
		t.Errorf("%s: annotation prometheus.io/port got %q, want %q", name, got, want)
	}
	other := map[string]string{"core": "kafka-addr", "edge": "mqtt-addr"}[role]
	portName := map[string]string{"core": "kafka", "edge": "mqtt"}[role]
	if addr, _ := values[other].(string); addr == "" || port(t, name+" "+other, addr) != int(containerPort(c, portName)) {
		t.Errorf("%s: %s got %v, want the container port named %s (%d)", name, other, values[other], portName, containerPort(c, portName))
	}

	// Data under the volume mounted at the image's data folder.
	dataFlag := map[string]string{"core": "data-dir", "edge": "spool-dir"}[role]
	dir, _ := values[dataFlag].(string)
	var mounted bool
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == imageDataDir && strings.HasPrefix(dir, imageDataDir+"/") {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("%s: %s got %q, want it on a volume mounted at %s", name, dataFlag, dir, imageDataDir)
	}

	// Security: the image's non-root user, nothing more.
	psc := pt.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != imageUID ||
		psc.FSGroup == nil || *psc.FSGroup != imageUID {
		t.Errorf("%s: pod securityContext got %+v, want runAsNonRoot, runAsUser and fsGroup %d", name, psc, imageUID)
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil ||
		!*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s: container securityContext got %+v, want no privilege escalation, a read-only root and all capabilities dropped", name, sc)
	}
	if pt.Spec.TerminationGracePeriodSeconds == nil || *pt.Spec.TerminationGracePeriodSeconds <= 30 {
		t.Errorf("%s: terminationGracePeriodSeconds got %v, want more than fluxo's 30s shutdown timeout", name, pt.Spec.TerminationGracePeriodSeconds)
	}
}

// podConfig returns the configuration a pod's fluxo reads: the --config file
// from its ConfigMap (checked like any fluxo configuration), then FLUXO_*
// variables with a plain value, then flags.
func podConfig(t *testing.T, name string, pt *corev1.PodTemplateSpec, m manifests) map[string]any {
	t.Helper()
	c := pt.Spec.Containers[0]
	cmd, _ := commandTree(t).resolve(c.Args)
	role := strings.TrimPrefix(cmd.path, "fluxo ")
	flags := flagValues(cmd, c.Args)
	configPath := flags["config"]
	if configPath == "" {
		t.Fatalf("%s: args got %q, want --config FILE", name, c.Args)
	}
	content := mountedFile(t, name, pt, m, configPath)
	values := checkConfig(t, fmt.Sprintf("%s: %s", name, configPath), content, role)
	for _, e := range c.Env {
		if f, ok := cmd.envFlag(e.Name); ok && e.ValueFrom == nil {
			values[f] = e.Value
		}
	}
	for f, v := range flags {
		values[f] = v
	}
	return values
}

// mountedFile returns the content of the file at path in a pod's container,
// from the ConfigMap volume mounted there.
func mountedFile(t *testing.T, name string, pt *corev1.PodTemplateSpec, m manifests, file string) []byte {
	t.Helper()
	c := pt.Spec.Containers[0]
	for _, vm := range c.VolumeMounts {
		if path.Dir(file) != vm.MountPath {
			continue
		}
		for _, v := range pt.Spec.Volumes {
			if v.Name != vm.Name {
				continue
			}
			var cms []string
			if v.ConfigMap != nil {
				cms = append(cms, v.ConfigMap.Name)
			}
			if v.Projected != nil {
				for _, s := range v.Projected.Sources {
					if s.ConfigMap != nil {
						cms = append(cms, s.ConfigMap.Name)
					}
				}
			}
			for _, cmName := range cms {
				if cm := m.configMap(cmName); cm != nil {
					if data, ok := cm.Data[path.Base(file)]; ok {
						return []byte(data)
					}
				}
			}
		}
	}
	t.Fatalf("%s: got no ConfigMap mounted with %s, want one", name, file)
	return nil
}

// kubectl kustomize renders the kustomization (the secret generator
// included); every object it outputs decodes strictly.
func TestKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: not rendering deploy/k8s with kubectl kustomize")
	}
	out, err := exec.Command(kubectl, "kustomize", deployPath("k8s")).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("kubectl kustomize deploy/k8s: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("kubectl kustomize deploy/k8s: %v", err)
	}
	var m manifests
	decodeManifests(t, "kubectl kustomize deploy/k8s", out, &m)
	if len(m.secrets) != 1 || !bytes.Contains([]byte(m.secrets[0].Data["users.yaml"]), []byte("users:")) {
		t.Errorf("kubectl kustomize deploy/k8s: got secrets %v, want fluxo-edge-users with users.yaml", m.secrets)
	}
	files, _ := readK8s(t)
	if got, want := len(m.all()), len(files.all())+1; got != want {
		t.Errorf("kubectl kustomize deploy/k8s: got %d objects, want %d (the files' and the generated secret)", got, want)
	}
}
