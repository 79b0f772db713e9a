package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// levelFlag is the value of --log-level: one of debug, info, warn, error.
type levelFlag zerolog.Level

func (l *levelFlag) Set(s string) error {
	switch s = strings.ToLower(s); s {
	case "debug", "info", "warn", "error":
		lvl, err := zerolog.ParseLevel(s)
		if err != nil {
			return err
		}
		*l = levelFlag(lvl)
		return nil
	}
	return fmt.Errorf("got %q, want debug, info, warn or error", s)
}

func (l *levelFlag) String() string { return zerolog.Level(*l).String() }

func (l *levelFlag) Type() string { return "level" }

// newLogger returns a logger writing to w at the given level: a human-readable
// console format when w is a terminal, one JSON object per line otherwise.
func newLogger(w io.Writer, level zerolog.Level) zerolog.Logger {
	if isTerminal(w) {
		w = zerolog.ConsoleWriter{
			Out:        w,
			TimeFormat: "15:04:05.000",
			NoColor:    os.Getenv("NO_COLOR") != "",
		}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// isTerminal reports whether w is a file open on a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}
