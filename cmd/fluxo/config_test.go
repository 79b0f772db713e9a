package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// probe holds the flag values a test command saw when it ran.
type probe struct {
	DataDir      string
	SegmentBytes int64
	Join         []string
	Retention    time.Duration
	Anonymous    bool
	Partitions   int
	Bootstrap    string
	LogLevel     string
}

// defaults are the values of probe's flags when nothing sets them.
var defaults = probe{
	DataDir:      "/var/lib/fluxo",
	SegmentBytes: 1 << 30,
	Join:         []string{},
	Retention:    168 * time.Hour,
	Bootstrap:    "127.0.0.1:9092",
	Partitions:   1,
	LogLevel:     "info",
}

// newTestRoot returns the real root command with test subcommands added:
//
//	fluxo probe             --data-dir --segment-bytes --join --retention --allow-anonymous
//	fluxo probetopic        --bootstrap (persistent)
//	fluxo probetopic create --partitions
//	fluxo spool             --spool-dir
//	fluxo secret            --token (required)
//
// The value seen by the command that ran is stored in *got. The environment
// is cleared of FLUXO_ variables for the test.
func newTestRoot(t *testing.T, got *probe) *cobra.Command {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, envPrefix) {
			t.Setenv(name, "") // restores it after the test
			os.Unsetenv(name)
		}
	}
	*got = defaults
	record := func(cmd *cobra.Command, _ []string) error {
		got.LogLevel = logger(cmd).GetLevel().String()
		return nil
	}

	root := newRootCmd()

	p := &cobra.Command{Use: "probe", RunE: record}
	f := p.Flags()
	f.StringVar(&got.DataDir, "data-dir", got.DataDir, "data directory")
	f.Int64Var(&got.SegmentBytes, "segment-bytes", got.SegmentBytes, "segment size")
	f.StringSliceVar(&got.Join, "join", got.Join, "peers")
	f.DurationVar(&got.Retention, "retention", got.Retention, "retention")
	f.BoolVar(&got.Anonymous, "allow-anonymous", got.Anonymous, "anonymous clients")

	topic := &cobra.Command{Use: "probetopic"}
	topic.PersistentFlags().StringVar(&got.Bootstrap, "bootstrap", got.Bootstrap, "core address")
	create := &cobra.Command{Use: "create", RunE: record}
	create.Flags().IntVar(&got.Partitions, "partitions", got.Partitions, "partitions")
	topic.AddCommand(create)

	spool := &cobra.Command{Use: "spool", RunE: record}
	spool.Flags().String("spool-dir", "", "spool directory")

	secret := &cobra.Command{Use: "secret", RunE: record}
	secret.Flags().String("token", "", "token")
	if err := secret.MarkFlagRequired("token"); err != nil {
		t.Fatal(err)
	}

	root.AddCommand(p, topic, spool, secret)
	return root
}

// execute runs the test root with args and env; "$FILE" in either stands for
// a temporary file holding yaml.
func execute(t *testing.T, args []string, env map[string]string, yaml string) (probe, string, error) {
	t.Helper()
	var got probe
	root := newTestRoot(t, &got)
	path := filepath.Join(t.TempDir(), "fluxo.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	for k, v := range env {
		t.Setenv(k, strings.ReplaceAll(v, "$FILE", path))
	}
	args = append([]string(nil), args...)
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "$FILE", path)
	}
	var stdout, stderr bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		return got, stderr.String(), &fileError{err: err, path: path}
	}
	return got, stderr.String(), nil
}

// fileError lets a test compare error text with the temporary file's path
// written as $FILE.
type fileError struct {
	err  error
	path string
}

func (e *fileError) Error() string { return strings.ReplaceAll(e.err.Error(), e.path, "$FILE") }

func TestConfigPrecedence(t *testing.T) {
	with := func(change func(*probe)) probe {
		p := defaults
		change(&p)
		return p
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		yaml string
		want probe
	}{
		{
			name: "defaults",
			args: []string{"probe"},
			want: defaults,
		},
		{
			name: "file",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "data-dir: /from/file\nsegment-bytes: 1048576\nretention: 24h\nallow-anonymous: true\nlog-level: debug\n",
			want: with(func(p *probe) {
				p.DataDir = "/from/file"
				p.SegmentBytes = 1 << 20
				p.Retention = 24 * time.Hour
				p.Anonymous = true
				p.LogLevel = "debug"
			}),
		},
		{
			name: "env over file",
			args: []string{"probe", "--config", "$FILE"},
			env:  map[string]string{"FLUXO_DATA_DIR": "/from/env", "FLUXO_LOG_LEVEL": "warn"},
			yaml: "data-dir: /from/file\nsegment-bytes: 4096\nlog-level: debug\n",
			want: with(func(p *probe) {
				p.DataDir = "/from/env"
				p.SegmentBytes = 4096
				p.LogLevel = "warn"
			}),
		},
		{
			name: "flag over env and file",
			args: []string{"probe", "--config", "$FILE", "--data-dir", "/from/flag", "--log-level", "error"},
			env:  map[string]string{"FLUXO_DATA_DIR": "/from/env", "FLUXO_LOG_LEVEL": "warn"},
			yaml: "data-dir: /from/file\nlog-level: debug\n",
			want: with(func(p *probe) {
				p.DataDir = "/from/flag"
				p.LogLevel = "error"
			}),
		},
		{
			name: "section over top level",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "data-dir: /top\nlog-level: warn\nprobe:\n  data-dir: /section\n",
			want: with(func(p *probe) {
				p.DataDir = "/section"
				p.LogLevel = "warn"
			}),
		},
		{
			name: "env over section",
			args: []string{"probe", "--config", "$FILE"},
			env:  map[string]string{"FLUXO_DATA_DIR": "/from/env"},
			yaml: "probe:\n  data-dir: /section\n",
			want: with(func(p *probe) { p.DataDir = "/from/env" }),
		},
		{
			name: "nested section over parent section over top level",
			args: []string{"probetopic", "create", "--config", "$FILE"},
			yaml: "partitions: 1\nbootstrap: top:9092\nprobetopic:\n  partitions: 2\n  bootstrap: topic:9092\n  create:\n    partitions: 3\n",
			want: with(func(p *probe) {
				p.Partitions = 3
				p.Bootstrap = "topic:9092"
			}),
		},
		{
			name: "keys of other commands are left alone",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "spool-dir: /spool\npartitions: 9\nspool:\n  spool-dir: /spool2\nprobetopic:\n  create:\n    partitions: not-a-number\n",
			want: defaults,
		},
		{
			name: "list in file",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "join: [a:7946, b:7946]\n",
			want: with(func(p *probe) { p.Join = []string{"a:7946", "b:7946"} }),
		},
		{
			name: "comma-separated list in env",
			args: []string{"probe"},
			env:  map[string]string{"FLUXO_JOIN": "a:7946,b:7946"},
			want: with(func(p *probe) { p.Join = []string{"a:7946", "b:7946"} }),
		},
		{
			name: "comma-separated list in file",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "join: a:7946,b:7946\n",
			want: with(func(p *probe) { p.Join = []string{"a:7946", "b:7946"} }),
		},
		{
			name: "flag list over env list",
			args: []string{"probe", "--join", "c:7946"},
			env:  map[string]string{"FLUXO_JOIN": "a:7946,b:7946"},
			want: with(func(p *probe) { p.Join = []string{"c:7946"} }),
		},
		{
			name: "exponent and empty value in file",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "segment-bytes: 1e6\ndata-dir:\n",
			want: with(func(p *probe) {
				p.SegmentBytes = 1000000
				p.DataDir = ""
			}),
		},
		{
			name: "config file from env",
			args: []string{"probe"},
			env:  map[string]string{"FLUXO_CONFIG": "$FILE"},
			yaml: "data-dir: /from/file\n",
			want: with(func(p *probe) { p.DataDir = "/from/file" }),
		},
		{
			name: "config flag over config env",
			args: []string{"probe", "--config", "$FILE"},
			env:  map[string]string{"FLUXO_CONFIG": "/does/not/exist.yaml"},
			yaml: "data-dir: /from/file\n",
			want: with(func(p *probe) { p.DataDir = "/from/file" }),
		},
		{
			name: "empty file",
			args: []string{"probe", "--config", "$FILE"},
			want: defaults,
		},
		{
			name: "empty section",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "probe: {}\n",
			want: defaults,
		},
		{
			name: "help is not read from env",
			args: []string{"probe"},
			env:  map[string]string{"FLUXO_HELP": "true"},
			want: defaults,
		},
		{
			name: "required flag from env",
			args: []string{"secret"},
			env:  map[string]string{"FLUXO_TOKEN": "s3cret"},
			want: defaults,
		},
		{
			name: "required flag from file",
			args: []string{"secret", "--config", "$FILE"},
			yaml: "secret:\n  token: s3cret\n",
			want: defaults,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := execute(t, tt.args, tt.env, tt.yaml)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		yaml string
		want string
	}{
		{
			name: "bad int in env",
			args: []string{"probe"},
			env:  map[string]string{"FLUXO_SEGMENT_BYTES": "abc"},
			want: `config: FLUXO_SEGMENT_BYTES="abc": invalid value for --segment-bytes: strconv.ParseInt: parsing "abc": invalid syntax`,
		},
		{
			name: "bad bool in env",
			args: []string{"probe"},
			env:  map[string]string{"FLUXO_ALLOW_ANONYMOUS": "maybe"},
			want: `config: FLUXO_ALLOW_ANONYMOUS="maybe": invalid value for --allow-anonymous: strconv.ParseBool: parsing "maybe": invalid syntax`,
		},
		{
			name: "bad level in env",
			args: []string{"probe"},
			env:  map[string]string{"FLUXO_LOG_LEVEL": "loud"},
			want: `config: FLUXO_LOG_LEVEL="loud": invalid value for --log-level: got "loud", want debug, info, warn or error`,
		},
		{
			name: "bad int in file",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "segment-bytes: abc\n",
			want: `config: $FILE: segment-bytes: invalid value "abc" for --segment-bytes: strconv.ParseInt: parsing "abc": invalid syntax`,
		},
		{
			name: "bad duration in a section",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "probe:\n  retention: forever\n",
			want: `config: $FILE: probe.retention: invalid value "forever" for --retention: time: invalid duration "forever"`,
		},
		{
			name: "bad value in the file while env sets another flag",
			args: []string{"probe", "--config", "$FILE"},
			env:  map[string]string{"FLUXO_RETENTION": "1h"},
			yaml: "segment-bytes: 1.5\n",
			want: `config: $FILE: segment-bytes: invalid value "1.5" for --segment-bytes: strconv.ParseInt: parsing "1.5": invalid syntax`,
		},
		{
			name: "list for a single value",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "data-dir: [a, b]\n",
			want: `config: $FILE: data-dir: invalid value [a b] for --data-dir: got a list, want a single value`,
		},
		{
			name: "unknown top-level key",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "data-dri: /x\n",
			want: `config: $FILE: unknown key data-dri: no flag --data-dri in fluxo or its subcommands`,
		},
		{
			name: "unknown key in a section",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "probe:\n  spool-dir: /x\n",
			want: `config: $FILE: unknown key probe.spool-dir: no flag --spool-dir in fluxo probe or its subcommands`,
		},
		{
			name: "unknown key in another command's section",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "probetopic:\n  create:\n    partitons: 3\n",
			want: `config: $FILE: unknown key probetopic.create.partitons: no flag --partitons in fluxo probetopic create or its subcommands`,
		},
		{
			name: "unknown section",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "prob:\n  data-dir: /x\n",
			want: `config: $FILE: unknown key prob.data-dir: "prob" is not a subcommand of fluxo`,
		},
		{
			name: "every unknown key is reported",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "b: 1\na: 2\n",
			want: "config: $FILE: unknown key a: no flag --a in fluxo or its subcommands\n" +
				"config: $FILE: unknown key b: no flag --b in fluxo or its subcommands",
		},
		{
			name: "config in the file",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "config: other.yaml\n",
			want: `config: $FILE: config: the config file cannot name another config file`,
		},
		{
			name: "missing file",
			args: []string{"probe", "--config", "$FILE.missing"},
			want: `config: $FILE.missing: no such file or directory`,
		},
		{
			name: "missing file from env",
			args: []string{"probe"},
			env:  map[string]string{"FLUXO_CONFIG": "$FILE.missing"},
			want: `config: $FILE.missing: no such file or directory`,
		},
		{
			name: "invalid yaml",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "data-dir: [\n",
			want: `config: $FILE: yaml: line 1: did not find expected node content`,
		},
		{
			name: "duplicate key",
			args: []string{"probe", "--config", "$FILE"},
			yaml: "data-dir: /a\ndata-dir: /b\n",
			want: `config: $FILE: yaml: unmarshal errors:
  line 2: mapping key "data-dir" already defined at line 1`,
		},
		{
			name: "required flag set nowhere",
			args: []string{"secret"},
			want: `required flag(s) "token" not set`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := execute(t, tt.args, tt.env, tt.yaml)
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got error\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestUnknownEnvIsLogged(t *testing.T) {
	_, stderr, err := execute(t, []string{"probe"}, map[string]string{"FLUXO_DATA_DRI": "/x", "FLUXO_SPOOL_DIR": "/y"}, "")
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if !strings.Contains(stderr, `"name":"FLUXO_DATA_DRI"`) {
		t.Errorf("got stderr %q, want a warning naming FLUXO_DATA_DRI", stderr)
	}
	if strings.Contains(stderr, "FLUXO_SPOOL_DIR") {
		t.Errorf("got stderr %q, want no warning for FLUXO_SPOOL_DIR (a flag of another command)", stderr)
	}
}

func TestEnvName(t *testing.T) {
	tests := []struct{ flag, want string }{
		{"data-dir", "FLUXO_DATA_DIR"},
		{"log-level", "FLUXO_LOG_LEVEL"},
		{"config", "FLUXO_CONFIG"},
		{"kafka-advertise", "FLUXO_KAFKA_ADVERTISE"},
	}
	for _, tt := range tests {
		if got := envName(tt.flag); got != tt.want {
			t.Errorf("envName(%q): got %q, want %q", tt.flag, got, tt.want)
		}
	}
}
