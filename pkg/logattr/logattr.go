// Package logattr carries log attributes in a context: what a request or a
// task is about (its request id; its bulk, organization and attempt) is put
// in its context once, where it starts, and every line logged with that
// context names it, whichever package logs the line.
package logattr

import (
	"context"
	"log/slog"
	"slices"
)

type key struct{}

// With returns a context whose log lines carry attrs, after those ctx
// carries already (an attribute of a key ctx has is replaced).
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	old := From(ctx)
	merged := make([]slog.Attr, 0, len(old)+len(attrs))
	for _, a := range old {
		if !slices.ContainsFunc(attrs, func(b slog.Attr) bool { return b.Key == a.Key }) {
			merged = append(merged, a)
		}
	}
	return context.WithValue(ctx, key{}, append(merged, attrs...))
}

// From returns the attributes ctx carries; nil for none.
func From(ctx context.Context) []slog.Attr {
	attrs, _ := ctx.Value(key{}).([]slog.Attr)
	return attrs
}

// Handler wraps a log handler so that every record logged with a context
// carries that context's attributes. A record that names a key itself keeps
// its own value, so that no line has a key twice. A handler wrapped already
// is returned as it is.
func Handler(h slog.Handler) slog.Handler {
	if _, ok := h.(handler); ok {
		return h
	}
	return handler{h}
}

type handler struct{ slog.Handler }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if attrs := From(ctx); len(attrs) > 0 {
		own := make(map[string]bool, r.NumAttrs())
		r.Attrs(func(a slog.Attr) bool { own[a.Key] = true; return true })
		for _, a := range attrs {
			if !own[a.Key] {
				r.AddAttrs(a)
			}
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return handler{h.Handler.WithAttrs(attrs)}
}

func (h handler) WithGroup(name string) slog.Handler {
	return handler{h.Handler.WithGroup(name)}
}
