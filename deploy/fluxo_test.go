package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

// fluxoBin is the fluxo binary built from ../cmd/fluxo by TestMain.
var fluxoBin string

// repoRoot is the root of the repository, the parent of this module.
var repoRoot = func() string {
	abs, err := filepath.Abs("..")
	if err != nil {
		panic("deploy: cannot resolve the repository root: " + err.Error())
	}
	return abs
}()

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fluxo-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy: cannot make a temporary folder:", err)
		os.Exit(1)
	}
	fluxoBin = filepath.Join(dir, "fluxo")
	build := exec.Command("go", "build", "-o", fluxoBin, "./cmd/fluxo")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "deploy: go build ./cmd/fluxo: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// deployPath returns the path of a file of deploy/, given relative to it.
func deployPath(rel string) string { return filepath.Join(repoRoot, "deploy", filepath.FromSlash(rel)) }

// readFile returns the content of a file of deploy/.
func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(deployPath(rel))
	if err != nil {
		t.Fatalf("cannot read deploy/%s: %v", rel, err)
	}
	return b
}

// command is a fluxo command as its --help describes it.
type command struct {
	path  string          // "fluxo edge passwd"
	flags map[string]bool // flag name → whether it takes a value; global flags included
	short map[string]bool // one-letter forms, same meaning
	subs  map[string]*command
}

// commandTree returns the fluxo command tree read from the --help of every
// command of the binary built by TestMain.
func commandTree(t *testing.T) *command {
	t.Helper()
	treeOnce.Do(func() { tree, treeErr = readCommand(nil) })
	if treeErr != nil {
		t.Fatal(treeErr)
	}
	return tree
}

var (
	treeOnce sync.Once
	tree     *command
	treeErr  error
)

var (
	// "  edge        Run an edge node: ..."
	subcommandLine = regexp.MustCompile(`^  ([a-z][a-z0-9-]*)\s{2,}\S`)
	// "  -h, --help   help for edge", "      --spool-sync string   spool durability..."
	flagLine = regexp.MustCompile(`^\s+(?:-([a-zA-Z]), )?--([a-z0-9][a-z0-9-]*)(?: (\S+))?(?:\s{2,}|$)`)
)

func readCommand(path []string) (*command, error) {
	args := append(append([]string(nil), path...), "--help")
	out, err := exec.Command(fluxoBin, args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("fluxo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	c := &command{
		path:  strings.Join(append([]string{"fluxo"}, path...), " "),
		flags: make(map[string]bool),
		short: make(map[string]bool),
		subs:  make(map[string]*command),
	}
	var section string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line != "" && !strings.HasPrefix(line, " ") {
			section = strings.TrimSuffix(line, ":")
			continue
		}
		switch section {
		case "Available Commands":
			if m := subcommandLine.FindStringSubmatch(line); m != nil && m[1] != "help" && m[1] != "completion" {
				sub, err := readCommand(append(append([]string(nil), path...), m[1]))
				if err != nil {
					return nil, err
				}
				c.subs[m[1]] = sub
			}
		case "Flags", "Global Flags":
			if m := flagLine.FindStringSubmatch(line); m != nil {
				takesValue := m[3] != ""
				c.flags[m[2]] = takesValue
				if m[1] != "" {
					c.short[m[1]] = takesValue
				}
			}
		}
	}
	if len(c.flags) == 0 {
		return nil, fmt.Errorf("%s --help lists no flags; has its format changed?", c.path)
	}
	return c, nil
}

// sub returns the command at path below c ("edge", "passwd"), or nil.
func (c *command) sub(path ...string) *command {
	for _, name := range path {
		if c == nil {
			return nil
		}
		c = c.subs[name]
	}
	return c
}

// allFlags returns the flags of c and of every command below it.
func (c *command) allFlags() map[string]bool {
	all := make(map[string]bool)
	var walk func(*command)
	walk = func(c *command) {
		for f := range c.flags {
			all[f] = true
		}
		for _, s := range c.subs {
			walk(s)
		}
	}
	walk(c)
	return all
}

// resolve walks args (what follows "fluxo" on a command line) and returns the
// command they run and a problem for every flag that command lacks.
func (c *command) resolve(args []string) (*command, []string) {
	var problems []string
	positional := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return c, problems
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			takesValue, ok := c.flags[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s has no flag --%s", c.path, name))
				continue
			}
			if takesValue && !hasValue {
				i++ // the flag's value
			}
		case strings.HasPrefix(a, "-") && len(a) == 2:
			takesValue, ok := c.short[a[1:]]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s has no flag %s", c.path, a))
				continue
			}
			if takesValue {
				i++
			}
		case !positional && c.subs[a] != nil:
			c = c.subs[a]
		default:
			positional = true
		}
	}
	return c, problems
}

// envName is the environment variable that sets a flag: FLUXO_DATA_DIR for
// --data-dir.
func envName(flag string) string {
	return "FLUXO_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// envFlag returns the flag of c that the environment variable name sets.
func (c *command) envFlag(name string) (string, bool) {
	for f := range c.flags {
		if envName(f) == name {
			return f, true
		}
	}
	return "", false
}

// checkConfig checks a fluxo YAML configuration file: the binary itself
// rejects keys that no command knows (fluxo --config FILE version reads the
// whole file), and the keys of the section named after sub must be flags of
// that command. It returns the file's values for sub, section over top level.
func checkConfig(t *testing.T, name string, content []byte, sub string) map[string]any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(fluxoBin, "--config", path, "version").CombinedOutput(); err != nil {
		t.Errorf("%s: fluxo --config FILE version: got %v, want success:\n%s", name, err, out)
	}
	var doc map[string]any
	if err := yaml.UnmarshalStrict(content, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cmd := commandTree(t).sub(sub)
	values := make(map[string]any)
	for key, v := range doc {
		if key == sub {
			continue
		}
		if _, ok := commandTree(t).flags[key]; !ok {
			t.Errorf("%s: top-level key %s: got no such global flag, want a flag of fluxo (or a %s: section)", name, key, sub)
		}
		values[key] = v
	}
	section, _ := doc[sub].(map[string]any)
	if section == nil {
		t.Fatalf("%s: got no %s: section, want the settings of fluxo %s under it", name, sub, sub)
	}
	for key, v := range section {
		if _, ok := cmd.flags[key]; !ok {
			t.Errorf("%s: key %s.%s: got no flag --%s in fluxo %s", name, sub, key, key, sub)
		}
		values[key] = v
	}
	return values
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestCommandTree(t *testing.T) {
	root := commandTree(t)
	for _, path := range [][]string{{"core"}, {"edge"}, {"edge", "passwd"}, {"devices"}, {"bridge"}, {"consume"}, {"version"}} {
		if root.sub(path...) == nil {
			t.Errorf("fluxo --help: got no command %q, want it (subcommands: %v)", strings.Join(path, " "), sortedKeys(root.subs))
		}
	}
	edge := root.sub("edge")
	if got, want := edge.flags["spool-sync"], true; got != want {
		t.Errorf("fluxo edge --spool-sync takes a value: got %v, want %v", got, want)
	}
	if got, want := edge.flags["allow-anonymous"], false; got != want {
		t.Errorf("fluxo edge --allow-anonymous takes a value: got %v, want %v", got, want)
	}
	if _, ok := edge.flags["config"]; !ok {
		t.Errorf("fluxo edge: got no global flag --config, want it")
	}
	_, problems := root.resolve([]string{"--config", "x.yaml", "edge", "--spool-sync", "batch", "--no-such-flag"})
	if got, want := strings.Join(problems, "; "), "fluxo edge has no flag --no-such-flag"; got != want {
		t.Errorf("resolve: got %q, want %q", got, want)
	}
}

// mustYAML decodes a YAML file of deploy/ into v, leniently: v may describe
// only part of it.
func mustYAML(t *testing.T, rel string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(readFile(t, rel), v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}
