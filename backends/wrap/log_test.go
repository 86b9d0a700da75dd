package wrap_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/wrap"
	"github.com/google/go-cmp/cmp"
)

// recordHandler is a slog.Handler that keeps the records it is given, at level and above.
type recordHandler struct {
	level slog.Level

	mu      sync.Mutex // guards records
	records []slog.Record
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}

func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { panic("not used") }
func (h *recordHandler) WithGroup(string) slog.Handler      { panic("not used") }

// take returns the records kept since the last take, each as its level, message and
// attributes (the duration's value replaced by "set" when positive), and the text of every
// record for searching.
func (h *recordHandler) take() ([]map[string]any, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	var all strings.Builder
	for _, r := range h.records {
		m := map[string]any{"level": r.Level.String(), "msg": r.Message}
		fmt.Fprintf(&all, "%s %s", r.Level, r.Message)
		r.Attrs(func(a slog.Attr) bool {
			v := a.Value.Resolve().Any()
			if d, ok := v.(time.Duration); ok && a.Key == "duration" && d > 0 {
				v = "set"
			}
			if err, ok := v.(error); ok {
				v = err.Error()
			}
			m[a.Key] = v
			fmt.Fprintf(&all, " %s=%v", a.Key, a.Value)
			return true
		})
		all.WriteByte('\n')
		out = append(out, m)
	}
	h.records = nil
	return out, all.String()
}

func TestLog(t *testing.T) {
	ctx := t.Context()
	mem := memory.New(memory.WithCopy())
	defer mem.Close()
	h := &recordHandler{level: slog.LevelDebug}
	faults := wrap.NewFaults(1)
	// The log wrapper outside the fault injector: it logs the injected errors.
	w := wrap.New(wrap.New(mem, faults.Hook), wrap.Log(slog.New(h)))

	const secret = "s3cr3t-payload"
	v := backends.EncodeEntry(backends.Entry{Payload: []byte(secret)})
	n := int64(len(v))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.Set(ctx, "a", v, time.Minute))
	_, err := w.Get(ctx, "a")
	must(err)
	_, _ = w.Get(ctx, "absent")
	must(w.(backends.MultiSetter).SetMulti(ctx, map[string][]byte{"b": v, "c": v}, 0))
	_, err = w.(backends.MultiGetter).GetMulti(ctx, []string{"a", "b", "x"})
	must(err)
	must(w.(backends.MultiDeleter).DeleteMulti(ctx, []string{"b", "c"}))
	must(faults.Set(wrap.Fault{FailNext: 1}, wrap.OpDelete))
	if err := w.Delete(ctx, "a"); !errors.Is(err, wrap.ErrInjected) {
		t.Fatalf("Delete: %v; want the injected error", err)
	}

	got, text := h.take()
	base := func(m map[string]any) map[string]any {
		m["level"], m["msg"], m["duration"] = "DEBUG", wrap.LogMessage, "set"
		return m
	}
	want := []map[string]any{
		base(map[string]any{"op": "set", "key": "a", "ttl": time.Minute, "bytes": n}),
		base(map[string]any{"op": "get", "key": "a", "bytes": n, "hits": int64(1)}),
		base(map[string]any{"op": "get", "key": "absent", "bytes": int64(0), "hits": int64(0)}),
		base(map[string]any{"op": "setmulti", "keys": int64(2), "bytes": 2 * n}),
		base(map[string]any{"op": "getmulti", "keys": int64(3), "bytes": 2 * n, "hits": int64(2)}),
		base(map[string]any{"op": "deletemulti", "keys": int64(2)}),
		base(map[string]any{"op": "delete", "key": "a", "error": "wrap: injected fault into delete"}),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if strings.Contains(text, secret) {
		t.Errorf("the log shows a value:\n%s", text)
	}
}

func TestLogLocks(t *testing.T) {
	ctx := t.Context()
	fb := newFile(t)
	defer fb.Close()
	h := &recordHandler{level: slog.LevelDebug}
	w := wrap.New(fb, wrap.Log(slog.New(h)))
	l, ok, err := w.(backends.Locker).TryLock(ctx, "k", time.Second)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := h.take()
	want := []map[string]any{
		{"level": "DEBUG", "msg": wrap.LogMessage, "op": "trylock", "key": "k", "duration": "set", "ttl": time.Second, "taken": int64(1)},
		{"level": "DEBUG", "msg": wrap.LogMessage, "op": "unlock", "key": "k", "duration": "set"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestLogDisabled(t *testing.T) {
	mem := memory.New()
	defer mem.Close()
	h := &recordHandler{level: slog.LevelInfo}
	w := wrap.New(mem, wrap.Log(slog.New(h)))
	_ = w.Set(t.Context(), "k", []byte("v"), 0)
	_, _ = w.Get(t.Context(), "k")
	if got, _ := h.take(); len(got) != 0 {
		t.Errorf("a logger without debug enabled got %d records", len(got))
	}
}
