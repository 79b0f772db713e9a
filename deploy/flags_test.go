package deploy

import (
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// deployFiles returns the files of deploy/ an operator reads or copies: all
// but this module's Go code.
func deployFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	root := deployPath(".")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(rel, ".go"), rel == "go.mod", rel == "go.sum":
			return nil
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// commandLines returns the fluxo command lines written in text: from a word
// "fluxo" (or a path ending in /fluxo) to the end of the line, a shell
// operator, a comment or a closing backquote; lines ending in a backslash
// go on.
func commandLines(text string) [][]string {
	text = strings.ReplaceAll(text, "\\\n", " ")
	var out [][]string
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		for i := 0; i < len(fields); i++ {
			word := strings.Trim(fields[i], "`\"'($")
			word = word[strings.LastIndexAny(word, "/=")+1:]
			if word != "fluxo" {
				continue
			}
			var args []string
			for _, f := range fields[i+1:] {
				if f == "|" || f == "||" || f == "&&" || f == ";" || strings.HasPrefix(f, "#") {
					break
				}
				end := strings.ContainsAny(strings.TrimLeft(f, "`\"'("), "`\"')")
				f = strings.Trim(f, "`\"'(),;:.")
				if f == "fluxo" || strings.HasSuffix(f, "/fluxo") {
					break
				}
				if f != "" {
					args = append(args, f)
				}
				if end {
					break
				}
			}
			out = append(out, args)
		}
	}
	return out
}

// fluxoEnv matches the environment variables fluxo reads.
var fluxoEnv = regexp.MustCompile(`\bFLUXO_[A-Z0-9_]+\b`)

// Every fluxo command line written anywhere in deploy/ (units, scripts,
// manifests' comments, the README's walk-throughs) uses flags its command
// has, and every FLUXO_ variable named sets some flag.
func TestFlagsExist(t *testing.T) {
	root := commandTree(t)
	envs := make(map[string]bool)
	for f := range root.allFlags() {
		envs[envName(f)] = true
	}
	var lines int
	for _, file := range deployFiles(t) {
		text := string(readFile(t, file))
		for _, args := range commandLines(text) {
			// Only a line naming a subcommand or a global flag is a command
			// line: "fluxo is ..." is prose, "useradd ... fluxo" names the
			// user.
			if len(args) == 0 || root.subs[args[0]] == nil && !isGlobalFlag(root, args[0]) {
				continue
			}
			lines++
			_, problems := root.resolve(args)
			for _, p := range problems {
				t.Errorf("deploy/%s: fluxo %s: %s", file, strings.Join(args, " "), p)
			}
		}
		for _, name := range fluxoEnv.FindAllString(text, -1) {
			if !envs[name] {
				t.Errorf("deploy/%s: %s: got no flag of fluxo that it sets", file, name)
			}
		}
	}
	t.Logf("%d fluxo command lines checked", lines)
	if lines < 10 {
		t.Errorf("got %d fluxo command lines in deploy/, want more: is the scanner broken?", lines)
	}
}

func TestCommandLines(t *testing.T) {
	for _, tc := range []struct {
		text string
		want string
	}{
		{"ExecStart=/usr/local/bin/fluxo edge --config /etc/fluxo/edge.yaml", "edge --config /etc/fluxo/edge.yaml"},
		{"run `fluxo core --data-dir /srv` then", "core --data-dir /srv"},
		{"sudo fluxo edge passwd /etc/fluxo/users.yaml s-1 && systemctl restart fluxo-edge", "edge passwd /etc/fluxo/users.yaml s-1"},
		{"fluxo edge --core a:9092 \\\n  --spool-sync batch # comment", "edge --core a:9092 --spool-sync batch"},
		{"docker compose exec core fluxo consume alarms --brokers core:9092", "consume alarms --brokers core:9092"},
		{"(fluxo version)", "version"},
		{`see "fluxo core --help" for more`, "core --help"},
		{"useradd --gid fluxo --shell /usr/sbin/nologin", "--shell /usr/sbin/nologin"},
	} {
		var got []string
		for _, args := range commandLines(tc.text) {
			got = append(got, strings.Join(args, " "))
		}
		if strings.Join(got, "|") != tc.want {
			t.Errorf("commandLines(%q): got %q, want %q", tc.text, got, tc.want)
		}
	}
}

// isGlobalFlag reports whether arg is a flag of fluxo itself: --config FILE,
// --log-level=debug, -h.
func isGlobalFlag(root *command, arg string) bool {
	if name, ok := strings.CutPrefix(arg, "--"); ok {
		name, _, _ = strings.Cut(name, "=")
		_, known := root.flags[name]
		return known
	}
	return len(arg) == 2 && arg[0] == '-' && root.short[arg[1:]]
}
