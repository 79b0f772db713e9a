package main

import (
	"bytes"
	"context"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	oldVersion, oldCommit, oldDate := version, commit, date
	t.Cleanup(func() { version, commit, date = oldVersion, oldCommit, oldDate })
	version, commit, date = "v1.2.3", "abc1234", "2026-01-02T15:04:05Z"

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("got exit code %d, want 0 (stderr %q)", code, stderr.String())
	}
	want := "fluxo v1.2.3\n" +
		"commit:   abc1234\n" +
		"built:    2026-01-02T15:04:05Z\n" +
		"go:       " + runtime.Version() + "\n" +
		"platform: " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if got := stdout.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestVersionDefaults(t *testing.T) {
	b := buildInfo()
	if b.Version != version {
		t.Errorf("got version %q, want %q", b.Version, version)
	}
	if b.GoVersion != runtime.Version() || b.OS != runtime.GOOS || b.Arch != runtime.GOARCH {
		t.Errorf("got %s %s/%s, want %s %s/%s", b.GoVersion, b.OS, b.Arch, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
}

func TestFillFromVCS(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-01-02T15:04:05Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	tests := []struct {
		name     string
		in       build
		settings []debug.BuildSetting
		want     build
	}{
		{
			name:     "unset takes vcs",
			in:       build{Commit: "unknown", Date: "unknown"},
			settings: vcs,
			want:     build{Commit: "0123456789ab-dirty", Date: "2026-01-02T15:04:05Z"},
		},
		{
			name:     "ldflags win",
			in:       build{Commit: "abc1234", Date: "2026-03-04T00:00:00Z"},
			settings: vcs,
			want:     build{Commit: "abc1234", Date: "2026-03-04T00:00:00Z"},
		},
		{
			name: "no vcs",
			in:   build{Commit: "unknown", Date: "unknown"},
			want: build{Commit: "unknown", Date: "unknown"},
		},
		{
			name:     "clean tree",
			in:       build{Commit: "unknown", Date: "unknown"},
			settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}},
			want:     build{Commit: "abc", Date: "unknown"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fillFromVCS(tt.in, tt.settings); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
