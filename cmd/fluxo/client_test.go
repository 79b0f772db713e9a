package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core"
	"github.com/fluxo-io/fluxo/internal/testutil"
)

func testRecord() *kgo.Record {
	return &kgo.Record{
		Topic:     "telemetry",
		Partition: 3,
		Offset:    42,
		Key:       []byte("car-7"),
		Value:     []byte(`{"speed":88}`),
		Headers: []kgo.RecordHeader{
			{Key: "mqtt.topic", Value: []byte("north/car-7/gps")},
			{Key: "qos", Value: []byte("1")},
		},
		Timestamp: time.UnixMilli(1767225600123),
	}
}

func TestFormatTemplate(t *testing.T) {
	tests := []struct {
		format string
		rec    *kgo.Record
		want   string
	}{
		{format: `%v\n`, rec: testRecord(), want: "{\"speed\":88}\n"},
		{format: `%t %p %o`, rec: testRecord(), want: "telemetry 3 42"},
		{format: `%k=%v`, rec: testRecord(), want: `car-7={"speed":88}`},
		{format: `%h`, rec: testRecord(), want: "mqtt.topic=north/car-7/gps,qos=1"},
		{format: `%T`, rec: testRecord(), want: "1767225600123"},
		{format: `%p\t%o\r\n`, rec: testRecord(), want: "3\t42\r\n"},
		{format: `100%% %v`, rec: testRecord(), want: `100% {"speed":88}`},
		{format: `a\\nb`, rec: testRecord(), want: `a\nb`},
		{format: `plain text`, rec: testRecord(), want: "plain text"},
		{format: `JSON`, rec: testRecord(), want: "JSON"}, // only "json" selects JSON
		{format: ``, rec: testRecord(), want: ""},
		{format: `[%k][%h]`, rec: &kgo.Record{Value: []byte("v")}, want: "[][]"},
		{format: `%v%v`, rec: &kgo.Record{Value: []byte("ab")}, want: "abab"},
		{format: `ünï %v`, rec: &kgo.Record{Value: []byte("ç")}, want: "ünï ç"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			f, err := parseFormat(tt.format)
			if err != nil {
				t.Fatalf("parseFormat(%q): got error %v, want none", tt.format, err)
			}
			got := string(f.append(nil, tt.rec))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFormatAppendsToBuffer(t *testing.T) {
	f, err := parseFormat(`%o\n`)
	if err != nil {
		t.Fatal(err)
	}
	got := string(f.append([]byte("prefix:"), testRecord()))
	if want := "prefix:42\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFormatErrors(t *testing.T) {
	tests := []struct {
		format  string
		wantErr string
	}{
		{format: `%x`, wantErr: "unknown verb %x"},
		{format: `%V`, wantErr: "unknown verb %V"},
		{format: `%v\q`, wantErr: `unknown escape \q`},
		{format: `%v%`, wantErr: "a lone % at the end"},
		{format: `%v\`, wantErr: `a lone \ at the end`},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			_, err := parseFormat(tt.format)
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestFormatJSON(t *testing.T) {
	tests := []struct {
		name string
		rec  *kgo.Record
		want string
	}{
		{
			name: "full record",
			rec:  testRecord(),
			want: `{"topic":"telemetry","partition":3,"offset":42,"timestamp":1767225600123,"key":"car-7","value":"{\"speed\":88}","headers":[{"key":"mqtt.topic","value":"north/car-7/gps"},{"key":"qos","value":"1"}]}` + "\n",
		},
		{
			name: "null key and value, no headers",
			rec:  &kgo.Record{Topic: "t", Timestamp: time.UnixMilli(5)},
			want: `{"topic":"t","partition":0,"offset":0,"timestamp":5,"key":null,"value":null,"headers":[]}` + "\n",
		},
		{
			name: "empty key is not null",
			rec:  &kgo.Record{Topic: "t", Key: []byte{}, Value: []byte{}, Timestamp: time.UnixMilli(0)},
			want: `{"topic":"t","partition":0,"offset":0,"timestamp":0,"key":"","value":"","headers":[]}` + "\n",
		},
		{
			name: "html and control characters",
			rec:  &kgo.Record{Topic: "t", Value: []byte("<a&b>\n\t\"q\""), Timestamp: time.UnixMilli(0)},
			want: `{"topic":"t","partition":0,"offset":0,"timestamp":0,"key":null,"value":"<a&b>\n\t\"q\"","headers":[]}` + "\n",
		},
		{
			name: "invalid utf-8 is replaced",
			rec:  &kgo.Record{Topic: "t", Value: []byte{'a', 0xff, 'b'}, Timestamp: time.UnixMilli(0)},
			want: `{"topic":"t","partition":0,"offset":0,"timestamp":0,"key":null,"value":"a\ufffdb","headers":[]}` + "\n",
		},
	}
	f, err := parseFormat("json")
	if err != nil {
		t.Fatalf("parseFormat(json): got error %v, want none", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := f.append(nil, tt.rec)
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("got invalid JSON %q", got)
			}
		})
	}
}

func TestSplitLine(t *testing.T) {
	tests := []struct {
		line, sep string
		wantKey   *string // nil: no key
		wantValue string
	}{
		{line: "hello", sep: "", wantKey: nil, wantValue: "hello"},
		{line: "k:v", sep: "", wantKey: nil, wantValue: "k:v"},
		{line: "k:v", sep: ":", wantKey: ptr("k"), wantValue: "v"},
		{line: "k:v:w", sep: ":", wantKey: ptr("k"), wantValue: "v:w"},
		{line: ":v", sep: ":", wantKey: ptr(""), wantValue: "v"},
		{line: "k:", sep: ":", wantKey: ptr("k"), wantValue: ""},
		{line: "no separator", sep: ":", wantKey: nil, wantValue: "no separator"},
		{line: "car-7::{\"a\":1}", sep: "::", wantKey: ptr("car-7"), wantValue: `{"a":1}`},
		{line: "a\tb", sep: "\t", wantKey: ptr("a"), wantValue: "b"},
		{line: "", sep: ":", wantKey: nil, wantValue: ""},
	}
	for _, tt := range tests {
		t.Run(tt.line+"/"+tt.sep, func(t *testing.T) {
			key, value := splitLine([]byte(tt.line), tt.sep)
			switch {
			case tt.wantKey == nil && key != nil:
				t.Errorf("key: got %q, want none", key)
			case tt.wantKey != nil && key == nil:
				t.Errorf("key: got none, want %q", *tt.wantKey)
			case tt.wantKey != nil && string(key) != *tt.wantKey:
				t.Errorf("key: got %q, want %q", key, *tt.wantKey)
			}
			if string(value) != tt.wantValue {
				t.Errorf("value: got %q, want %q", value, tt.wantValue)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", maxLineBytes)
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "lines", in: "a\nb\n", want: []string{"a", "b"}},
		{name: "no final newline", in: "a\nb", want: []string{"a", "b"}},
		{name: "crlf", in: "a\r\nb\r\n", want: []string{"a", "b"}},
		{name: "empty lines are records", in: "\n\na\n", want: []string{"", "", "a"}},
		{name: "empty input", in: "", want: nil},
		{name: "1 MiB line", in: long + "\n" + "b\n", want: []string{long, "b"}},
		{name: "1 MiB line with crlf", in: long + "\r\n", want: []string{long}},
		{name: "longer than 1 MiB", in: "a\n" + long + "y\n", want: []string{"a"}, wantErr: "stdin: line 2: longer than 1048576 bytes"},
		{name: "much longer than 1 MiB", in: "a\n" + long + long + "\n", want: []string{"a"}, wantErr: "stdin: line 2: longer than 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := make(chan []byte, 10)
			err := readLines(strings.NewReader(tt.in), lines, make(chan struct{}))
			close(lines)
			var got []string
			for l := range lines {
				got = append(got, string(l))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d lines, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("line %d: got %d bytes %.20q, want %d bytes %.20q", i+1, len(got[i]), got[i], len(tt.want[i]), tt.want[i])
				}
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("got error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestReadLinesStops(t *testing.T) {
	stop := make(chan struct{})
	close(stop)
	lines := make(chan []byte) // nobody receives
	if err := readLines(strings.NewReader("a\nb\n"), lines, stop); err != nil {
		t.Errorf("got error %v, want none", err)
	}
}

func TestParseHeaders(t *testing.T) {
	tests := []struct {
		flags   []string
		want    []kgo.RecordHeader
		wantErr string
	}{
		{flags: nil, want: nil},
		{flags: []string{"a=1"}, want: []kgo.RecordHeader{{Key: "a", Value: []byte("1")}}},
		{flags: []string{"a=1", "b=2", "a=3"}, want: []kgo.RecordHeader{
			{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}, {Key: "a", Value: []byte("3")},
		}},
		{flags: []string{"a="}, want: []kgo.RecordHeader{{Key: "a", Value: []byte{}}}},
		{flags: []string{"url=http://x/?q=1,2"}, want: []kgo.RecordHeader{{Key: "url", Value: []byte("http://x/?q=1,2")}}},
		{flags: []string{"novalue"}, wantErr: `--header: got "novalue", want KEY=VALUE`},
		{flags: []string{"=v"}, wantErr: `--header: got "=v", want KEY=VALUE`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.flags, " "), func(t *testing.T) {
			got, err := parseHeaders(tt.flags)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d headers, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i].Key != tt.want[i].Key || !bytes.Equal(got[i].Value, tt.want[i].Value) {
					t.Errorf("header %d: got %s=%s, want %s=%s", i, got[i].Key, got[i].Value, tt.want[i].Key, tt.want[i].Value)
				}
			}
		})
	}
}

func TestHeaderFlagKeepsCommas(t *testing.T) {
	cmd := newProduceCmd()
	if err := cmd.ParseFlags([]string{"--header", "a=1,2", "--header", "b=3"}); err != nil {
		t.Fatal(err)
	}
	got, err := cmd.Flags().GetStringArray("header")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a=1,2", "b=3"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseTopicConfigs(t *testing.T) {
	got, err := parseTopicConfigs([]string{"retention.ms=1000", "cleanup.policy=compact"})
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	for k, want := range map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"} {
		if v := got[k]; v == nil || *v != want {
			t.Errorf("%s: got %v, want %q", k, v, want)
		}
	}
	if _, err := parseTopicConfigs([]string{"a=1", "a=2"}); err == nil || !strings.Contains(err.Error(), "a given twice") {
		t.Errorf("duplicate key: got error %v, want one saying a given twice", err)
	}
	if _, err := parseTopicConfigs([]string{"retention.ms"}); err == nil || !strings.Contains(err.Error(), "want KEY=VALUE") {
		t.Errorf("missing value: got error %v, want one asking for KEY=VALUE", err)
	}
}

func TestAcksFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    acksFlag
		wantStr string
		wantErr bool
	}{
		{in: "all", want: acksAll, wantStr: "all"},
		{in: "ALL", want: acksAll, wantStr: "all"},
		{in: "-1", want: acksAll, wantStr: "all"},
		{in: "1", want: acksLeader, wantStr: "1"},
		{in: "0", want: acksNone, wantStr: "0"},
		{in: "2", wantErr: true},
		{in: "leader", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a := acksAll
			err := a.Set(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %s, want an error", a.String())
				}
				if want := "want all, 1 or 0"; !strings.Contains(err.Error(), want) {
					t.Errorf("got error %q, want it to contain %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if a != tt.want {
				t.Errorf("got %d, want %d", a, tt.want)
			}
			if a.String() != tt.wantStr {
				t.Errorf("String: got %q, want %q", a.String(), tt.wantStr)
			}
		})
	}
}

func TestAcksOptsMakeAValidClient(t *testing.T) {
	// kgo refuses an idempotent producer without acks=all: every --acks
	// value must give options it accepts.
	for _, a := range []acksFlag{acksAll, acksLeader, acksNone} {
		opts := append(a.opts(), kgo.SeedBrokers("127.0.0.1:1"))
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Errorf("acks %s: got error %v, want none", a.String(), err)
			continue
		}
		cl.Close()
	}
}

func TestTopicError(t *testing.T) {
	tests := []struct {
		err       error
		brokerMsg string
		want      string
	}{
		{err: kerr.TopicAlreadyExists, brokerMsg: "Topic 'telemetry' already exists.", want: "topic telemetry: TOPIC_ALREADY_EXISTS: Topic 'telemetry' already exists."},
		{err: kerr.TopicAlreadyExists, want: "topic telemetry: TOPIC_ALREADY_EXISTS: " + kerr.TopicAlreadyExists.Description},
		{err: errors.New("boom"), want: "topic telemetry: boom"},
		{err: errors.New("boom"), brokerMsg: "why", want: "topic telemetry: boom: why"},
	}
	for _, tt := range tests {
		if got := topicError("telemetry", tt.err, tt.brokerMsg).Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestUnsupported(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{err: nil, want: false},
		{err: kerr.UnsupportedVersion, want: true},
		{err: errors.Join(errors.New("shard"), kerr.UnsupportedVersion), want: true},
		{err: errors.New("broker is too old; the broker has already indicated it will not know how to handle the request"), want: true},
		{err: kerr.UnknownTopicOrPartition, want: false},
	}
	for _, tt := range tests {
		if got := unsupported(tt.err); got != tt.want {
			t.Errorf("unsupported(%v): got %t, want %t", tt.err, got, tt.want)
		}
	}
}

func TestClientCommandFlags(t *testing.T) {
	// Defaults and flags as documented in each command's help.
	tests := []struct {
		args []string // path to the command
		flag string
		want string
	}{
		{args: []string{"topic", "create"}, flag: "brokers", want: "[127.0.0.1:9092]"},
		{args: []string{"topic", "create"}, flag: "partitions", want: "1"},
		{args: []string{"topic", "create"}, flag: "replication-factor", want: "-1"},
		{args: []string{"topic", "list"}, flag: "brokers", want: "[127.0.0.1:9092]"},
		{args: []string{"produce"}, flag: "brokers", want: "[127.0.0.1:9092]"},
		{args: []string{"produce"}, flag: "acks", want: "all"},
		{args: []string{"produce"}, flag: "partition", want: "-1"},
		{args: []string{"consume"}, flag: "brokers", want: "[127.0.0.1:9092]"},
		{args: []string{"consume"}, flag: "format", want: `%v\n`},
		{args: []string{"consume"}, flag: "count", want: "0"},
		{args: []string{"consume"}, flag: "timeout", want: "0s"},
	}
	root := newRootCmd()
	for _, tt := range tests {
		cmd, _, err := root.Find(tt.args)
		if err != nil {
			t.Fatalf("%v: got error %v, want none", tt.args, err)
		}
		var f *pflag.Flag
		for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.PersistentFlags(), cmd.InheritedFlags()} {
			if f == nil {
				f = fs.Lookup(tt.flag)
			}
		}
		if f == nil {
			t.Errorf("%s --%s: got no such flag, want one", strings.Join(tt.args, " "), tt.flag)
			continue
		}
		if f.DefValue != tt.want {
			t.Errorf("%s --%s: got default %q, want %q", strings.Join(tt.args, " "), tt.flag, f.DefValue, tt.want)
		}
	}
}

func TestClientCommandsHaveExamples(t *testing.T) {
	for _, args := range [][]string{
		{"topic"}, {"topic", "create"}, {"topic", "list"}, {"topic", "describe"}, {"topic", "delete"},
		{"produce"}, {"consume"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append(args, "--help"), &stdout, &stderr)
		if code != 0 {
			t.Errorf("%s --help: got exit code %d, want 0 (stderr %q)", strings.Join(args, " "), code, stderr.String())
		}
		_, examples, ok := strings.Cut(stdout.String(), "\nExamples:\n")
		if !ok {
			t.Errorf("%s --help: got %q, want an Examples section", strings.Join(args, " "), stdout.String())
			continue
		}
		examples, _, _ = strings.Cut(examples, "\n\n")
		if want := "fluxo " + strings.Join(args, " ") + " "; !strings.Contains(examples, want) {
			t.Errorf("%s --help: got examples %q, want them to contain %q", strings.Join(args, " "), examples, want)
		}
	}
}

func TestClientCommandUsageErrors(t *testing.T) {
	tests := []struct {
		args       []string
		wantStderr string
	}{
		{args: []string{"produce"}, wantStderr: "accepts 1 arg(s), received 0"},
		{args: []string{"produce", "t", "--acks", "2"}, wantStderr: `want all, 1 or 0`},
		{args: []string{"produce", "t", "--key", "k", "--key-separator", ":"}, wantStderr: "[key key-separator] were all set"},
		{args: []string{"produce", "t", "--header", "nokey"}, wantStderr: `--header: got "nokey", want KEY=VALUE`},
		{args: []string{"produce", "t", "--partition", "-2"}, wantStderr: "--partition: got -2"},
		{args: []string{"consume"}, wantStderr: "accepts 1 arg(s), received 0"},
		{args: []string{"consume", "t", "--format", "%z"}, wantStderr: "unknown verb %z"},
		{args: []string{"consume", "t", "--count", "-1"}, wantStderr: "--count: got -1"},
		{args: []string{"topic", "create"}, wantStderr: "requires at least 1 arg(s)"},
		{args: []string{"topic", "create", "t", "--partitions", "0"}, wantStderr: "--partitions: got 0"},
		{args: []string{"topic", "create", "t", "--replication-factor", "0"}, wantStderr: "--replication-factor: got 0"},
		{args: []string{"topic", "create", "t", "-c", "retention.ms"}, wantStderr: `--topic-config: got "retention.ms", want KEY=VALUE`},
		{args: []string{"topic", "describe"}, wantStderr: "requires at least 1 arg(s)"},
		{args: []string{"topic", "delete"}, wantStderr: "requires at least 1 arg(s)"},
		{args: []string{"topic", "list", "--brokers", ""}, wantStderr: "--brokers: got no broker"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != 1 {
				t.Errorf("got exit code %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("got stderr %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestConfigSource(t *testing.T) {
	tests := []struct {
		src  kmsg.ConfigSource
		want string
	}{
		{src: kmsg.ConfigSourceDefaultConfig, want: "default"},
		{src: kmsg.ConfigSourceDynamicTopicConfig, want: "dynamic topic"},
		{src: kmsg.ConfigSourceStaticBrokerConfig, want: "static broker"},
		{src: kmsg.ConfigSourceDynamicDefaultBrokerConfig, want: "dynamic default broker"},
	}
	for _, tt := range tests {
		if got := configSource(tt.src); got != tt.want {
			t.Errorf("configSource(%s): got %q, want %q", tt.src, got, tt.want)
		}
	}
}

func TestPlural(t *testing.T) {
	tests := []struct {
		n    int
		want string
	}{
		{0, "0 records"}, {1, "1 record"}, {2, "2 records"},
	}
	for _, tt := range tests {
		if got := plural(tt.n, "record"); got != tt.want {
			t.Errorf("plural(%d): got %q, want %q", tt.n, got, tt.want)
		}
	}
}

// The tests below run the commands through run against a core node started
// in process, on a free port, with its data in the test's temporary
// directory.

// startBroker starts a core node and returns its Kafka address.
func startBroker(t *testing.T) string {
	t.Helper()
	cfg := core.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = ""
	cfg.Broker.AutoCreateTopics = false
	cfg.Group.InitialRebalanceDelay = 0 // one member per group here: do not wait for others
	node, err := core.New(cfg)
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	if err := node.Start(); err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("node.Shutdown: %v", err)
		}
	})
	return node.KafkaAddr()
}

// fluxo runs the fluxo command line args through run, with stdin as its
// standard input, and returns the exit code and what it printed.
func fluxo(t *testing.T, ctx context.Context, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if stdin != "" {
		path := filepath.Join(t.TempDir(), "stdin")
		if err := os.WriteFile(path, []byte(stdin), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		saved := os.Stdin
		os.Stdin = f // the commands read cmd.InOrStdin(), which is os.Stdin under run
		defer func() { os.Stdin = saved }()
	}
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustFluxo is fluxo that fails the test on a non-zero exit code.
func mustFluxo(t *testing.T, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, stdout, stderr := fluxo(t, ctx, stdin, args...)
	if code != 0 {
		t.Fatalf("fluxo %s: got exit code %d, want 0 (stderr %q)", strings.Join(args, " "), code, stderr)
	}
	return stdout, stderr
}

func TestIntegrationTopicCommands(t *testing.T) {
	brokers := "--brokers=" + startBroker(t)

	stdout, _ := mustFluxo(t, "", "topic", "create", "telemetry", "--partitions", "3", "-c", "retention.ms=3600000", brokers)
	if want := "created topic telemetry"; !strings.Contains(stdout, want) {
		t.Errorf("create: got stdout %q, want it to contain %q", stdout, want)
	}

	testutil.EventuallyNoError(t, "list", func() error {
		stdout, _ := mustFluxo(t, "", "topic", "list", brokers)
		if !regexp.MustCompile(`(?m)^telemetry\s+3\s+1\s*$`).MatchString(stdout) {
			return fmt.Errorf("got stdout %q, want a line for telemetry with 3 partitions and 1 replica", stdout)
		}
		return nil
	})

	// Creating it again fails for that topic only.
	code, stdout, stderr := fluxo(t, context.Background(), "", "topic", "create", "telemetry", "alarms", brokers)
	if code != 1 {
		t.Errorf("create again: got exit code %d, want 1", code)
	}
	if want := "topic telemetry: TOPIC_ALREADY_EXISTS: "; !strings.Contains(stderr, want) {
		t.Errorf("create again: got stderr %q, want it to contain %q", stderr, want)
	}
	if want := "fluxo: 1 of 2 topics failed"; !strings.Contains(stderr, want) {
		t.Errorf("create again: got stderr %q, want it to contain %q", stderr, want)
	}
	if want := "created topic alarms"; !strings.Contains(stdout, want) {
		t.Errorf("create again: got stdout %q, want it to contain %q", stdout, want)
	}

	mustFluxo(t, "a\nb\nc\n", "produce", "telemetry", "--partition", "1", brokers)
	testutil.EventuallyNoError(t, "describe", func() error {
		stdout, _ := mustFluxo(t, "", "topic", "describe", "telemetry", brokers)
		for _, re := range []string{
			`(?m)^topic telemetry$`,
			`partitions: 3, replication factor: 1`,
			`(?m)^\s+PARTITION\s+LEADER\s+EPOCH\s+REPLICAS\s+ISR\s+LOG-START\s+HIGH-WATERMARK\s+ERROR$`,
			`(?m)^\s+0\s+\d+\s+\d+\s+\d+\s+\d+\s+0\s+0\s+-$`,
			`(?m)^\s+1\s+\d+\s+\d+\s+\d+\s+\d+\s+0\s+3\s+-$`,
			`(?m)^\s+2\s+\d+\s+\d+\s+\d+\s+\d+\s+0\s+0\s+-$`,
			`(?m)^  configs(:\n(.*\n)*\s+retention.ms\s+3600000\s|: not shown, the broker does not support DescribeConfigs$)`,
		} {
			if !regexp.MustCompile(re).MatchString(stdout) {
				return fmt.Errorf("got stdout %q, want it to match %s", stdout, re)
			}
		}
		return nil
	})

	code, _, stderr = fluxo(t, context.Background(), "", "topic", "describe", "telemetry", "nope", brokers)
	if code != 1 {
		t.Errorf("describe nope: got exit code %d, want 1", code)
	}
	if want := "topic nope: UNKNOWN_TOPIC_OR_PARTITION: "; !strings.Contains(stderr, want) {
		t.Errorf("describe nope: got stderr %q, want it to contain %q", stderr, want)
	}

	stdout, _ = mustFluxo(t, "", "topic", "delete", "telemetry", "alarms", brokers)
	if want := "deleted topic telemetry\ndeleted topic alarms\n"; stdout != want {
		t.Errorf("delete: got stdout %q, want %q", stdout, want)
	}
	testutil.EventuallyNoError(t, "list after delete", func() error {
		stdout, _ := mustFluxo(t, "", "topic", "list", brokers)
		if strings.Contains(stdout, "telemetry") || strings.Contains(stdout, "alarms") {
			return fmt.Errorf("got stdout %q, want neither telemetry nor alarms", stdout)
		}
		return nil
	})

	code, _, stderr = fluxo(t, context.Background(), "", "topic", "delete", "telemetry", brokers)
	if code != 1 {
		t.Errorf("delete again: got exit code %d, want 1", code)
	}
	if want := "topic telemetry: UNKNOWN_TOPIC_OR_PARTITION: "; !strings.Contains(stderr, want) {
		t.Errorf("delete again: got stderr %q, want it to contain %q", stderr, want)
	}
}

func TestIntegrationProduceConsume(t *testing.T) {
	brokers := "--brokers=" + startBroker(t)
	mustFluxo(t, "", "topic", "create", "readings", "--partitions", "3", brokers)

	// 100 lines over 10 keys, in order per key.
	var in strings.Builder
	want := make(map[string][]string) // key → values in produced order
	for i := range 100 {
		key := fmt.Sprintf("sensor-%d", i%10)
		value := fmt.Sprintf("reading %d: %d.5", i, 20+i%7)
		fmt.Fprintf(&in, "%s|%s\n", key, value)
		want[key] = append(want[key], value)
	}
	_, stderr := mustFluxo(t, in.String(), "produce", "readings", "--key-separator", "|",
		"--header", "source=test", "--header", "unit=C", brokers)
	if want := "produced 100 records"; !strings.Contains(stderr, want) {
		t.Errorf("produce: got stderr %q, want it to contain %q", stderr, want)
	}

	stdout, _ := mustFluxo(t, "", "consume", "readings", "--from-beginning", "--count", "100", "--timeout", "30s",
		"--format", `%p\t%o\t%k\t%v\t%h\n`, brokers)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 100 {
		t.Fatalf("consume: got %d lines, want 100:\n%s", len(lines), stdout)
	}
	got := make(map[string][]string)
	partitionOf := make(map[string]string)
	lastOffset := make(map[string]int)
	for _, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			t.Fatalf("consume: got line %q, want 5 tab-separated fields", line)
		}
		p, offset, key, value, headers := f[0], f[1], f[2], f[3], f[4]
		if headers != "source=test,unit=C" {
			t.Errorf("headers of %q: got %q, want %q", line, headers, "source=test,unit=C")
		}
		if q, ok := partitionOf[key]; ok && q != p {
			t.Errorf("key %s: got partitions %s and %s, want one", key, q, p)
		}
		partitionOf[key] = p
		o, err := strconv.Atoi(offset)
		if err != nil {
			t.Fatalf("offset of %q: %v", line, err)
		}
		if last, ok := lastOffset[p]; ok && o <= last {
			t.Errorf("partition %s: got offset %d after %d, want increasing offsets", p, o, last)
		}
		lastOffset[p] = o
		got[key] = append(got[key], value)
	}
	for key, values := range want {
		if strings.Join(got[key], "|") != strings.Join(values, "|") {
			t.Errorf("key %s: got values %q, want %q", key, got[key], values)
		}
	}

	// JSON: one object per line.
	stdout, _ = mustFluxo(t, "", "consume", "readings", "--from-beginning", "--count", "1", "--timeout", "30s",
		"--format", "json", brokers)
	var rec jsonRecord
	if err := json.Unmarshal([]byte(stdout), &rec); err != nil {
		t.Fatalf("consume json: got %q, want one JSON object: %v", stdout, err)
	}
	if rec.Topic != "readings" || rec.Key == nil || rec.Value == nil || len(rec.Headers) != 2 || rec.Timestamp <= 0 {
		t.Errorf("consume json: got %+v, want a record of readings with key, value, 2 headers and a timestamp", rec)
	}
}

func TestIntegrationConsumeFromEnd(t *testing.T) {
	brokers := "--brokers=" + startBroker(t)
	mustFluxo(t, "", "topic", "create", "live", brokers)
	mustFluxo(t, "old\n", "produce", "live", brokers)

	// Without --from-beginning, only records produced after the consumer
	// started are printed; keep producing until one arrives.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"consume", "live", "--count", "1", brokers}, &out, &errOut)
		done <- result{code, out.String(), errOut.String()}
	}()
	var r result
	for i := 0; ; i++ {
		select {
		case r = <-done:
		case <-time.After(200 * time.Millisecond):
			mustFluxo(t, fmt.Sprintf("new-%d\n", i), "produce", "live", brokers)
			continue
		}
		break
	}
	if r.code != 0 {
		t.Fatalf("consume: got exit code %d, want 0 (stderr %q)", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "new-") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("consume: got %q, want one new record", r.stdout)
	}
}

func TestIntegrationConsumeGroupResumes(t *testing.T) {
	brokers := "--brokers=" + startBroker(t)
	mustFluxo(t, "", "topic", "create", "events", "--partitions", "2", brokers)

	lines := func(from, to int) string {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "event-%02d\n", i)
		}
		return b.String()
	}
	sorted := func(s string) string {
		l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		slices.Sort(l)
		return strings.Join(l, "\n") + "\n"
	}
	consume := func(args ...string) string {
		stdout, _ := mustFluxo(t, "", append([]string{"consume", "events", "--group", "loggers", "--format", `%k-%v\n`, brokers}, args...)...)
		return stdout
	}

	// Keys "event", values "00".."14", all on partition 0.
	mustFluxo(t, lines(0, 15), "produce", "events", "--key-separator", "-", "--partition", "0", brokers)

	// A new group starts at the beginning with --from-beginning.
	first := consume("--from-beginning", "--count", "10", "--timeout", "30s")
	if got, want := first, lines(0, 10); got != want {
		t.Fatalf("first run: got\n%swant\n%s", got, want)
	}
	// The next run resumes after the printed records: the other 5.
	second := consume("--from-beginning", "--count", "5", "--timeout", "30s")
	if got, want := second, lines(10, 15); got != want {
		t.Errorf("second run: got\n%swant\n%s", got, want)
	}

	// Records produced since are what the next run gets, also on
	// partition 1, which had no record and so no printed offset: the
	// group committed where it started there, so it does not start at
	// the end again (auto.offset.reset=latest without --from-beginning).
	mustFluxo(t, lines(15, 18), "produce", "events", "--partition", "1", brokers)
	mustFluxo(t, lines(18, 20), "produce", "events", "--partition", "0", brokers)
	third := consume("--count", "5", "--timeout", "30s", "--format", `%v\n`)
	if got, want := sorted(third), lines(15, 20); got != want {
		t.Errorf("third run: got\n%swant\n%s", got, want)
	}
	if rest := consume("--from-beginning", "--timeout", "3s"); rest != "" {
		t.Errorf("fourth run: got %q, want nothing left", rest)
	}
}

func TestIntegrationConsumeStops(t *testing.T) {
	brokers := "--brokers=" + startBroker(t)
	mustFluxo(t, "", "topic", "create", "quiet", brokers)

	// --timeout: no record for that long.
	start := time.Now()
	if stdout, _ := mustFluxo(t, "", "consume", "quiet", "--from-beginning", "--timeout", "500ms", brokers); stdout != "" {
		t.Errorf("timeout: got %q, want nothing", stdout)
	}
	if elapsed := time.Since(start); elapsed < 500*time.Millisecond {
		t.Errorf("timeout: got exit after %s, want at least 500ms", elapsed)
	}

	// Interrupted (Ctrl-C cancels the command's context): exit 0, for a
	// direct consumer and a group member.
	for _, args := range [][]string{{"consume", "quiet", brokers}, {"consume", "quiet", "--group", "g", brokers}} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		code, _, stderr := fluxo(t, ctx, "", args...)
		cancel()
		if code != 0 {
			t.Errorf("%s interrupted: got exit code %d, want 0 (stderr %q)", strings.Join(args, " "), code, stderr)
		}
	}
}

func TestIntegrationProduceLongLine(t *testing.T) {
	brokers := "--brokers=" + startBroker(t)
	mustFluxo(t, "", "topic", "create", "blobs", "-c", "max.message.bytes=2097152", brokers)

	long := strings.Repeat("0123456789abcdef", maxLineBytes/16)
	_, stderr := mustFluxo(t, long+"\nshort\n", "produce", "blobs", "--max-batch-bytes", "2097152", brokers)
	if want := "produced 2 records"; !strings.Contains(stderr, want) {
		t.Errorf("produce: got stderr %q, want it to contain %q", stderr, want)
	}
	stdout, _ := mustFluxo(t, "", "consume", "blobs", "--from-beginning", "--count", "2", "--timeout", "20s", brokers)
	if stdout != long+"\nshort\n" {
		t.Errorf("consume: got %d bytes, want the %d bytes produced", len(stdout), len(long)+7)
	}

	// Longer than 1 MiB: refused before anything is sent for that line.
	code, _, stderr := fluxo(t, context.Background(), "a\n"+long+"x\n", "produce", "blobs", brokers)
	if code != 1 {
		t.Errorf("too long: got exit code %d, want 1", code)
	}
	if want := "fluxo: stdin: line 2: longer than 1048576 bytes"; !strings.Contains(stderr, want) {
		t.Errorf("too long: got stderr %q, want it to contain %q", stderr, want)
	}
}

func TestIntegrationProduceInterrupted(t *testing.T) {
	brokers := "--brokers=" + startBroker(t)
	mustFluxo(t, "", "topic", "create", "typed", brokers)

	// Standard input stays open, as a terminal does: Ctrl-C must still
	// stop the command, after delivering the lines already read.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	saved := os.Stdin
	os.Stdin = pr
	defer func() { os.Stdin = saved }()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"produce", "typed", brokers}, &out, &errOut)
		done <- result{code, errOut.String()}
	}()
	if _, err := pw.Write([]byte("one\ntwo\nthree\n")); err != nil {
		t.Fatal(err)
	}
	if stdout, _ := mustFluxo(t, "", "consume", "typed", "--from-beginning", "--count", "3", "--timeout", "20s", brokers); stdout != "one\ntwo\nthree\n" {
		t.Errorf("consume: got %q, want %q", stdout, "one\ntwo\nthree\n")
	}

	cancel()
	select {
	case r := <-done:
		if r.code != 0 {
			t.Errorf("produce: got exit code %d, want 0 (stderr %q)", r.code, r.stderr)
		}
		if want := "produced 3 records"; !strings.Contains(r.stderr, want) {
			t.Errorf("produce: got stderr %q, want it to contain %q", r.stderr, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("produce: got no exit 10s after the interrupt, want one")
	}
}
