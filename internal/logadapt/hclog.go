package logadapt

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

// The hashicorp libraries log through hclog (raft) and the standard log
// package (serf, memberlist): Hclog and StdLogger write what they say into
// a zerolog logger, so that nothing reaches stderr.

// hclogAdapter is an hclog.Logger writing to zerolog.
type hclogAdapter struct {
	log  zerolog.Logger
	name string
	args []any // implied args, from With
}

// Hclog returns an hclog.Logger (what raft takes) that writes to l with
// component=name. hclog's trace and debug go out at debug, the rest as
// they are; key/value pairs become fields (time, level, message, node and
// component renamed lib_*, to keep ours unambiguous).
func Hclog(l zerolog.Logger, name string) hclog.Logger {
	return &hclogAdapter{log: l, name: name}
}

func zlevelOf(l hclog.Level) zerolog.Level {
	switch l {
	case hclog.Off:
		return zerolog.Disabled
	case hclog.Error:
		return zerolog.ErrorLevel
	case hclog.Warn:
		return zerolog.WarnLevel
	case hclog.Info, hclog.NoLevel:
		return zerolog.InfoLevel
	default:
		return zerolog.DebugLevel
	}
}

func (h *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	ev := h.log.WithLevel(zlevelOf(level))
	if ev == nil {
		return
	}
	ev.Str("component", h.name)
	addPairs(ev, h.args)
	addPairs(ev, args)
	ev.Msg(msg)
}

func addPairs(ev *zerolog.Event, args []any) {
	for i := 0; i < len(args); i += 2 {
		key := fmt.Sprint(args[i])
		if i+1 == len(args) {
			ev.Interface("extra", args[i])
			return
		}
		switch key {
		case "time", "level", "message", "node", "component":
			key = "lib_" + key // keep ours unambiguous
		}
		switch v := args[i+1].(type) {
		case hclog.Format:
			if f, ok := first(v); ok {
				ev.Str(key, fmt.Sprintf(f, v[1:]...))
			} else {
				ev.Str(key, fmt.Sprint(v...))
			}
		case error:
			ev.AnErr(key, v)
		case fmt.Stringer:
			ev.Stringer(key, v)
		case string:
			ev.Str(key, v)
		default:
			ev.Interface(key, v)
		}
	}
}

func (h *hclogAdapter) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogAdapter) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogAdapter) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogAdapter) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogAdapter) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogAdapter) enabled(l zerolog.Level) bool {
	return l >= h.log.GetLevel() && l >= zerolog.GlobalLevel()
}

func (h *hclogAdapter) IsTrace() bool { return h.enabled(zerolog.DebugLevel) }
func (h *hclogAdapter) IsDebug() bool { return h.enabled(zerolog.DebugLevel) }
func (h *hclogAdapter) IsInfo() bool  { return h.enabled(zerolog.InfoLevel) }
func (h *hclogAdapter) IsWarn() bool  { return h.enabled(zerolog.WarnLevel) }
func (h *hclogAdapter) IsError() bool { return h.enabled(zerolog.ErrorLevel) }

func (h *hclogAdapter) ImpliedArgs() []any { return h.args }

func (h *hclogAdapter) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(append([]any(nil), h.args...), args...)
	return &c
}

func (h *hclogAdapter) Name() string { return h.name }

func (h *hclogAdapter) Named(name string) hclog.Logger {
	c := *h
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name = name
	return &c
}

func (h *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

// SetLevel is ignored: the zerolog logger's level decides.
func (h *hclogAdapter) SetLevel(hclog.Level) {}

func (h *hclogAdapter) GetLevel() hclog.Level {
	switch l := max(h.log.GetLevel(), zerolog.GlobalLevel()); {
	case l <= zerolog.DebugLevel:
		return hclog.Debug
	case l == zerolog.InfoLevel:
		return hclog.Info
	case l == zerolog.WarnLevel:
		return hclog.Warn
	case l == zerolog.Disabled:
		return hclog.Off
	default:
		return hclog.Error
	}
}

func (h *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(nil), "", 0)
}

func (h *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &stdlogWriter{log: h.log, component: h.name}
}

// StdLogger returns a *log.Logger (what serf and memberlist take) that
// writes to l. Lines are "[LEVEL] origin: message", as serf and
// memberlist write them: [TRACE] and [DEBUG] go out at debug, [WARN] at
// warn, [ERR] and [ERROR] at error, anything else at info; origin becomes
// the component (else component). special, if not nil, sees each line
// first, with its component, and returns true when it logged the line
// itself.
func StdLogger(l zerolog.Logger, component string, special func(l zerolog.Logger, component, line string) bool) *log.Logger {
	return log.New(&stdlogWriter{log: l, component: component, special: special}, "", 0)
}

// stdlogWriter turns "[LEVEL] origin: message" lines into zerolog events.
// log.Logger calls Write once per line, serialized.
type stdlogWriter struct {
	log       zerolog.Logger
	component string
	special   func(l zerolog.Logger, component, line string) bool // may be nil
}

func (w *stdlogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	level := zerolog.InfoLevel
	if strings.HasPrefix(line, "[") {
		if end := strings.IndexByte(line, ']'); end > 0 {
			switch line[1:end] {
			case "TRACE", "DEBUG":
				level = zerolog.DebugLevel
			case "WARN":
				level = zerolog.WarnLevel
			case "ERR", "ERROR":
				level = zerolog.ErrorLevel
			}
			line = strings.TrimSpace(line[end+1:])
		}
	}
	component := w.component
	if i := strings.Index(line, ": "); i > 0 && !strings.ContainsAny(line[:i], " =") {
		component, line = line[:i], line[i+2:]
	}
	if w.special != nil && w.special(w.log, component, line) {
		return len(p), nil
	}
	w.log.WithLevel(level).Str("component", component).Msg(line)
	return len(p), nil
}

// first returns an hclog.Fmt's format string.
func first(v hclog.Format) (string, bool) {
	if len(v) == 0 {
		return "", false
	}
	f, ok := v[0].(string)
	return f, ok
}
