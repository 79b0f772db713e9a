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

// statefulSet returns the StatefulSet of a podTemplates key ("StatefulSet
// fluxo-core"), or nil.
func (m manifests) statefulSet(key string) *appsv1.StatefulSet {
	for _, s := range m.statefulSets {
		if "StatefulSet "+s.Name == key {
			return s
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

	checkCoreCluster(t, m, sts, headless)

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
				if got, want := protocol(p.Protocol), containerProtocol(pt.Spec.Containers[0], p.TargetPort.StrVal); got != want {
					t.Errorf("Service %s: port %s: got protocol %s, want %s as its target port in %s", svc.Name, p.Name, got, want, name)
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

// protocol is p, TCP when unset (the API's default).
func protocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// containerProtocol returns the protocol of a container's port named name.
func containerProtocol(c corev1.Container, name string) corev1.Protocol {
	for _, p := range c.Ports {
		if p.Name == name {
			return protocol(p.Protocol)
		}
	}
	return ""
}

// envRef matches a $(VAR) reference in a container's environment value.
var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkCoreCluster checks that the core's StatefulSet makes its replicas one
// cluster: each broker's node id from its pod index, Kafka and Raft
// advertised by its stable name, Serf by its IP (memberlist takes no name),
// every broker joining the stable names of all, bootstrap-expect the number
// of replicas, the Serf (TCP and UDP) and Raft ports open in the pod and the
// headless Service, and a disruption budget that keeps a Raft quorum.
func checkCoreCluster(t *testing.T, m manifests, sts *appsv1.StatefulSet, headless *corev1.Service) {
	t.Helper()
	name := "StatefulSet " + sts.Name
	c := sts.Spec.Template.Spec.Containers[0]
	values := podConfig(t, name, &sts.Spec.Template, m)
	replicas := int32(1)
	if sts.Spec.Replicas != nil {
		replicas = *sts.Spec.Replicas
	}
	if replicas != 3 {
		t.Errorf("%s: replicas got %d, want 3", name, replicas)
	}
	if got, want := valueString(values["bootstrap-expect"]), strconv.Itoa(int(replicas)); got != want {
		t.Errorf("%s: bootstrap-expect got %q, want %s (the replicas)", name, got, want)
	}
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("%s: podManagementPolicy got %q, want Parallel (with OrderedReady, pod 0 waits for the others to be ready, which it must be first)", name, sts.Spec.PodManagementPolicy)
	}
	if headless != nil && !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: got publishNotReadyAddresses false, want true (brokers join each other by name before they are ready)", headless.Name)
	}

	// The environment: references to variables defined before, the
	// downward API where the value comes from the pod.
	fields := make(map[string]string) // variable → fieldRef path
	defined := make(map[string]bool)
	env := make(map[string]string)
	for _, e := range c.Env {
		for _, ref := range envRef.FindAllStringSubmatch(e.Value, -1) {
			if !defined[ref[1]] {
				t.Errorf("%s: env %s: got a reference to $(%s), want a variable defined before it (Kubernetes leaves others as they are)", name, e.Name, ref[1])
			}
		}
		defined[e.Name] = true
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			fields[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if got, want := fields["FLUXO_NODE_ID"], "metadata.labels['apps.kubernetes.io/pod-index']"; got != want {
		t.Errorf("%s: FLUXO_NODE_ID got fieldRef %q, want %q (the pod index: the image has no shell to compute it)", name, got, want)
	}
	var podName, podNamespace, podIP string
	for v, path := range fields {
		switch path {
		case "metadata.name":
			podName = v
		case "metadata.namespace":
			podNamespace = v
		case "status.podIP":
			podIP = v
		}
	}
	if podName == "" || podNamespace == "" || podIP == "" {
		t.Fatalf("%s: got no variables for the pod's name, namespace and IP (downward API), want them", name)
	}
	stable := fmt.Sprintf("$(%s).%s.$(%s).svc.cluster.local", podName, sts.Spec.ServiceName, podNamespace)
	kafkaPort := sslListenerPort(t, name+" listeners", valueString(values["listeners"]))
	serfPort := port(t, name+" serf-addr", valueString(values["serf-addr"]))
	raftPort := port(t, name+" raft-addr", valueString(values["raft-addr"]))
	for flag, want := range map[string]string{
		"advertised-listeners": fmt.Sprintf("SSL://%s:%d", stable, kafkaPort),
		"raft-advertise":       fmt.Sprintf("%s:%d", stable, raftPort),
		"serf-advertise":       fmt.Sprintf("$(%s):%d", podIP, serfPort),
	} {
		if got := env[envName(flag)]; got != want {
			t.Errorf("%s: %s got %q, want %q", name, envName(flag), got, want)
		}
	}
	var join []string
	for i := range int(replicas) {
		join = append(join, fmt.Sprintf("%s-%d.%s.$(%s).svc.cluster.local:%d", sts.Name, i, sts.Spec.ServiceName, podNamespace, serfPort))
	}
	if got, want := env["FLUXO_JOIN"], strings.Join(join, ","); got != want {
		t.Errorf("%s: FLUXO_JOIN got %q, want %q (the Serf addresses of every replica)", name, got, want)
	}

	// The ports, in the pod and the headless Service.
	byPort := make(map[string]bool)
	for _, p := range c.Ports {
		byPort[fmt.Sprintf("%d/%s", p.ContainerPort, protocol(p.Protocol))] = true
	}
	for _, want := range []string{
		fmt.Sprintf("%d/TCP", serfPort), fmt.Sprintf("%d/UDP", serfPort), fmt.Sprintf("%d/TCP", raftPort),
	} {
		if !byPort[want] {
			t.Errorf("%s: got no container port %s, want it (Serf gossips over TCP and UDP, Raft over TCP)", name, want)
		}
	}
	if headless != nil {
		svcPorts := make(map[string]bool)
		for _, p := range headless.Spec.Ports {
			svcPorts[fmt.Sprintf("%d/%s", containerPort(c, p.TargetPort.StrVal), protocol(p.Protocol))] = true
		}
		for _, want := range []string{fmt.Sprintf("%d/TCP", serfPort), fmt.Sprintf("%d/UDP", serfPort), fmt.Sprintf("%d/TCP", raftPort)} {
			if !svcPorts[want] {
				t.Errorf("Service %s: got no port for %s, want one", headless.Name, want)
			}
		}
	}

	// A voluntary disruption keeps a majority.
	for _, pdb := range m.pdbs {
		mu := pdb.Spec.MaxUnavailable
		if mu == nil || mu.IntValue() != 1 {
			t.Errorf("PodDisruptionBudget %s: maxUnavailable got %v, want 1", pdb.Name, mu)
			continue
		}
		if left := replicas - int32(mu.IntValue()); left <= replicas/2 {
			t.Errorf("PodDisruptionBudget %s: got %d of %d brokers left in a disruption, want a majority", pdb.Name, left, replicas)
		}
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
	portName := map[string]string{"core": "kafka", "edge": "mqtt"}[role]
	if role == "core" {
		if p := sslListenerPort(t, name+" listeners", valueString(values["listeners"])); p != int(containerPort(c, portName)) {
			t.Errorf("%s: listeners got %v, want the container port named %s (%d)", name, values["listeners"], portName, containerPort(c, portName))
		}
		for flag, want := range map[string]string{"inter-broker-listener": "SSL", "tls-client-auth": "required", "authorizer": "true"} {
			if got := valueString(values[flag]); got != want {
				t.Errorf("%s: %s got %q, want %q", name, flag, got, want)
			}
		}
		if values["cluster-tls-cert"] == nil || values["cluster-tls-ca"] == nil {
			t.Errorf("%s: got no cluster-tls-cert and cluster-tls-ca, want the Raft port's mutual TLS", name)
		}
		certs := certNames(valueString(values["tls-cert"]))
		if len(certs) != 1 || !strings.Contains(valueString(values["super-users"]), "User:CN="+certs[0]) {
			t.Errorf("%s: super-users got %v, want the brokers' certificate's principal (%v) among them", name, values["super-users"], certs)
		}
	} else if addr, _ := values["mqtt-addr"].(string); addr == "" || port(t, name+" mqtt-addr", addr) != int(containerPort(c, portName)) {
		t.Errorf("%s: mqtt-addr got %v, want the container port named %s (%d)", name, values["mqtt-addr"], portName, containerPort(c, portName))
	}

	// Every certificate and key the settings name is a file of a Secret
	// projected where they read it, readable by the group only.
	for _, m := range tlsRef.FindAllStringSubmatch(fmt.Sprint(values), -1) {
		if !secretFile(pt, m[0]) {
			t.Errorf("%s: names %s, got no Secret item projected there, want one", name, m[0])
		}
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

// secretFile reports whether the file at path in a pod's container comes
// from a Secret's item of a projected volume mounted above it, with a mode
// that lets only the owner and the group (fsGroup) read it.
func secretFile(pt *corev1.PodTemplateSpec, file string) bool {
	for _, vm := range pt.Spec.Containers[0].VolumeMounts {
		rel, ok := strings.CutPrefix(file, vm.MountPath+"/")
		if !ok {
			continue
		}
		for _, v := range pt.Spec.Volumes {
			if v.Name != vm.Name || v.Projected == nil {
				continue
			}
			mode := int32(0o644)
			if v.Projected.DefaultMode != nil {
				mode = *v.Projected.DefaultMode
			}
			for _, s := range v.Projected.Sources {
				if s.Secret == nil {
					continue
				}
				for _, it := range s.Secret.Items {
					m := mode
					if it.Mode != nil {
						m = *it.Mode
					}
					if it.Path == rel && m&0o007 == 0 {
						return true
					}
				}
			}
		}
	}
	return false
}
