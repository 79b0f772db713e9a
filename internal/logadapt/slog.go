package logadapt

import (
	"context"
	"log/slog"

	"github.com/rs/zerolog"
)

// Mochi returns the *slog.Logger mochi-mqtt takes, writing to log with
// component=mqtt.
//
// Levels: mochi's Info messages are start-up and shutdown chatter and go
// out at debug; its warnings with an empty message (the listeners' "a
// connection ended with an error", EOF included) at debug too, as "mqtt
// connection ended". Attributes that carry whole packets (pk, packet,
// will) are left out: they hold device payloads and would flood the log.
// Groups become dotted field names ("a.b.key").
func Mochi(log zerolog.Logger) *slog.Logger {
	return slog.New(&slogHandler{log: log.With().Str("component", "mqtt").Logger()})
}

type slogHandler struct {
	log    zerolog.Logger
	prefix string // group prefix for attribute keys, "a.b." or ""
}

func zlevel(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		return zerolog.ErrorLevel
	case l >= slog.LevelWarn:
		return zerolog.WarnLevel
	default:
		return zerolog.DebugLevel
	}
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return zlevel(l) >= h.log.GetLevel() && zlevel(l) >= zerolog.GlobalLevel()
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	lvl := zlevel(r.Level)
	if lvl == zerolog.WarnLevel && r.Message == "" {
		lvl = zerolog.DebugLevel
	}
	ev := h.log.WithLevel(lvl)
	if ev == nil {
		return nil
	}
	var kv []any
	r.Attrs(func(a slog.Attr) bool {
		kv = appendAttr(kv, h.prefix, a)
		return true
	})
	msg := r.Message
	if msg == "" {
		msg = "mqtt connection ended"
	}
	ev.Fields(kv).Msg(msg)
	return nil
}

func (h *slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var kv []any
	for _, a := range as {
		kv = appendAttr(kv, h.prefix, a)
	}
	return &slogHandler{log: h.log.With().Fields(kv).Logger(), prefix: h.prefix}
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &slogHandler{log: h.log, prefix: h.prefix + name + "."}
}

func skipAttr(key string) bool {
	switch key {
	case "pk", "packet", "will":
		return true
	}
	return false
}

// appendAttr appends a's key (with prefix) and value to kv, as zerolog's
// Fields takes them: a group's attributes one by one, under the group's
// name; a value of a kind zerolog knows as that type.
func appendAttr(kv []any, prefix string, a slog.Attr) []any {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) || skipAttr(a.Key) {
		return kv
	}
	k := prefix + a.Key
	v := a.Value
	switch v.Kind() {
	case slog.KindGroup:
		p := prefix
		if a.Key != "" {
			p = k + "."
		}
		for _, g := range v.Group() {
			kv = appendAttr(kv, p, g)
		}
		return kv
	case slog.KindString:
		return append(kv, k, v.String())
	case slog.KindInt64:
		return append(kv, k, v.Int64())
	case slog.KindUint64:
		return append(kv, k, v.Uint64())
	case slog.KindFloat64:
		return append(kv, k, v.Float64())
	case slog.KindBool:
		return append(kv, k, v.Bool())
	case slog.KindDuration:
		return append(kv, k, v.Duration())
	case slog.KindTime:
		return append(kv, k, v.Time())
	}
	return append(kv, k, v.Any())
}
