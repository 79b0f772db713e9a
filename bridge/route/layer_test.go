package route

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBridgeImportsNoEdge checks the layering: the bridge (its inputs,
// spool, uplink, downlink and forwarder) sits below the edge, and nothing
// under bridge/ may depend on the edge package or anything below it.
func TestBridgeImportsNoEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	// From bridge/route, ../... is every package under bridge/.
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", "../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const edgePkg = "github.com/fluxo-io/fluxo/edge"
	var seen int
	for _, p := range strings.Fields(string(out)) {
		seen++
		if p == edgePkg || strings.HasPrefix(p, edgePkg+"/") {
			t.Errorf("got %s among the dependencies of bridge/..., want no edge package", p)
		}
	}
	if seen == 0 {
		t.Fatalf("go list named no package, want the bridge's and their dependencies")
	}
}
