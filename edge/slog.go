package edge

import (
	"context"
	"log/slog"

	"github.com/rs/zerolog"
)

// newSlogLogger returns a *slog.Logger (what mochi takes) that writes to
// the zerolog logger with component=mqtt.
//
// Levels: mochi's Info messages are start-up and shutdown chatter and go
// out at debug; its warnings with an empty message (the listeners' "a
// connection ended with an error", EOF included) at debug too. Attributes
// that carry whole packets (pk, packet, will) are left out: they hold
// device payloads and would flood the log.
func newSlogLogger(l zerolog.Logger) *slog.Logger {
	return slog.New(&slogHandler{log: l.With().Str("component", "mqtt").Logger()})
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
	r.Attrs(func(a slog.Attr) bool {
		addAttr(ev, h.prefix, a)
		return true
	})
	msg := r.Message
	if msg == "" {
		msg = "mqtt connection ended"
	}
	ev.Msg(msg)
	return nil
}

func (h *slogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	ctx := h.log.With()
	for _, a := range as {
		ctx = addCtxAttr(ctx, h.prefix, a)
	}
	return &slogHandler{log: ctx.Logger(), prefix: h.prefix}
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

func addAttr(ev *zerolog.Event, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) || skipAttr(a.Key) {
		return
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
			addAttr(ev, p, g)
		}
	case slog.KindString:
		ev.Str(k, v.String())
	case slog.KindInt64:
		ev.Int64(k, v.Int64())
	case slog.KindUint64:
		ev.Uint64(k, v.Uint64())
	case slog.KindFloat64:
		ev.Float64(k, v.Float64())
	case slog.KindBool:
		ev.Bool(k, v.Bool())
	case slog.KindDuration:
		ev.Dur(k, v.Duration())
	case slog.KindTime:
		ev.Time(k, v.Time())
	default:
		if err, ok := v.Any().(error); ok {
			ev.AnErr(k, err)
			return
		}
		ev.Interface(k, v.Any())
	}
}

func addCtxAttr(ctx zerolog.Context, prefix string, a slog.Attr) zerolog.Context {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) || skipAttr(a.Key) {
		return ctx
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
			ctx = addCtxAttr(ctx, p, g)
		}
		return ctx
	case slog.KindString:
		return ctx.Str(k, v.String())
	case slog.KindInt64:
		return ctx.Int64(k, v.Int64())
	case slog.KindUint64:
		return ctx.Uint64(k, v.Uint64())
	case slog.KindFloat64:
		return ctx.Float64(k, v.Float64())
	case slog.KindBool:
		return ctx.Bool(k, v.Bool())
	case slog.KindDuration:
		return ctx.Dur(k, v.Duration())
	case slog.KindTime:
		return ctx.Time(k, v.Time())
	}
	if err, ok := v.Any().(error); ok {
		return ctx.AnErr(k, err)
	}
	return ctx.Interface(k, v.Any())
}
