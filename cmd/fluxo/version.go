package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Build information, stamped by the Makefile:
//
//	go build -ldflags "-X main.version=v0.1.0 -X main.commit=abc1234 -X main.date=2026-01-02T15:04:05Z"
//
// A plain "go build" in a git checkout leaves them unset; the commit and date
// then come from the VCS information the Go toolchain embeds, if any.
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func init() { register(newVersionCmd) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and platform of this binary",
		Long: `Print the version, commit and build date of this binary, with the Go version
that built it and the platform it was built for.`,
		Example: `  fluxo version`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printVersion(cmd.OutOrStdout(), buildInfo())
		},
	}
}

// build describes a fluxo binary.
type build struct {
	Version, Commit, Date string
	GoVersion, OS, Arch   string
}

// buildInfo returns the build of the running binary.
func buildInfo() build {
	b := build{
		Version:   version,
		Commit:    commit,
		Date:      date,
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		b = fillFromVCS(b, info.Settings)
	}
	return b
}

// fillFromVCS fills the commit and date left unset by -ldflags from the
// vcs.revision, vcs.modified and vcs.time build settings.
func fillFromVCS(b build, settings []debug.BuildSetting) build {
	var rev, modified, at string
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		case "vcs.time":
			at = s.Value
		}
	}
	if b.Commit == "unknown" && rev != "" {
		b.Commit = rev
		if len(b.Commit) > 12 {
			b.Commit = b.Commit[:12]
		}
		if modified == "true" {
			b.Commit += "-dirty"
		}
	}
	if b.Date == "unknown" && at != "" {
		b.Date = at
	}
	return b
}

func printVersion(w io.Writer, b build) error {
	_, err := fmt.Fprintf(w, "fluxo %s\ncommit:   %s\nbuilt:    %s\ngo:       %s\nplatform: %s/%s\n",
		b.Version, b.Commit, b.Date, b.GoVersion, b.OS, b.Arch)
	return err
}
