// Package logadapt adapts the loggers of the libraries fluxo embeds to
// zerolog, so that every part logs through the zerolog.Logger it was
// given: franz-go's kgo.Logger (kgo.go), mochi-mqtt's slog.Logger
// (slog.go), hashicorp's hclog.Logger for raft and the standard
// *log.Logger serf and memberlist take (hclog.go).
package logadapt

import (
	"fmt"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kgo returns a kgo.Logger that writes to log. franz-go logs a constant
// message with key/value pairs, which become fields, plus
// component=kgo. level is the most verbose level franz-go is asked to log
// at (kgo.LogLevelWarn for a client that should stay quiet unless
// something goes wrong).
func Kgo(log zerolog.Logger, level kgo.LogLevel) kgo.Logger {
	return kgoLogger{log: log, level: level}
}

type kgoLogger struct {
	log   zerolog.Logger
	level kgo.LogLevel
}

func (l kgoLogger) Level() kgo.LogLevel { return l.level }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var ev *zerolog.Event
	switch level {
	case kgo.LogLevelError:
		ev = l.log.Error()
	case kgo.LogLevelWarn:
		ev = l.log.Warn()
	case kgo.LogLevelInfo:
		ev = l.log.Info()
	case kgo.LogLevelDebug:
		ev = l.log.Debug()
	default:
		return
	}
	for i := 0; i+1 < len(keyvals); i += 2 {
		key, ok := keyvals[i].(string)
		if !ok {
			key = fmt.Sprint(keyvals[i])
		}
		switch v := keyvals[i+1].(type) {
		case error:
			ev = ev.AnErr(key, v)
		case string:
			ev = ev.Str(key, v)
		case fmt.Stringer:
			ev = ev.Stringer(key, v)
		default:
			ev = ev.Interface(key, v)
		}
	}
	if len(keyvals)%2 == 1 {
		ev = ev.Interface("extra", keyvals[len(keyvals)-1])
	}
	ev.Str("component", "kgo").Msg(msg)
}
