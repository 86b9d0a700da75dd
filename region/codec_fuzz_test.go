package region_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/region"
)

// The allocation bounds the codecs' godoc promise for a payload of n bytes, plus what one
// region read that fails costs whatever the codec (the error it reports, the shared read).
const readOverhead = 8 << 10

func jsonBound(n int) uint64 { return 128*uint64(n) + 4<<10 + readOverhead }
func gobBound(n int) uint64  { return 64*uint64(n) + 32<<10 + readOverhead }
func rawBound(n int) uint64  { return uint64(n) + readOverhead }

// oneEntry is a byte backend that holds one entry, under every key.
type oneEntry struct{ entry []byte }

func (b *oneEntry) Get(context.Context, string) ([]byte, error)            { return b.entry, nil }
func (*oneEntry) Set(context.Context, string, []byte, time.Duration) error { return nil }
func (*oneEntry) Delete(context.Context, string) error                     { return nil }

// decodeVia returns a function that reads payload, as an entry's, through a View[V] of a region
// with codec: the region's decode path, as a backend's bytes take it. It reports whether the
// read was a hit.
func decodeVia[V any](tb testing.TB, codec region.Codec) func(payload []byte) bool {
	be := &oneEntry{}
	r := region.New("fuzz", region.WithCodec(codec), region.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err := r.Configure(be); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	v := region.NewView[V](r)
	return func(payload []byte) bool {
		be.entry = backends.EncodeEntry(backends.Entry{Created: time.Now().UnixNano(), Payload: payload})
		_, ok, err := v.Get(context.Background(), "k")
		if err != nil {
			tb.Fatalf("Get: %v, want a miss for bytes that do not decode", err)
		}
		return ok
	}
}

// fuzzDecode checks that reading data through each of reads allocates at most bound(len(data)).
func fuzzDecode(t *testing.T, data []byte, bound func(int) uint64, reads map[string]func([]byte) bool) {
	for name, read := range reads {
		if got := allocBytes(func() { read(data) }); got > bound(len(data)) {
			t.Fatalf("reading %d bytes into %s allocated %d bytes, more than the bound %d:\n%q", len(data), name, got, bound(len(data)), data)
		}
	}
}

func FuzzGob(f *testing.F) {
	for _, n := range []uint64{1, 1 << 22, 1 << 31} {
		f.Add(hostileGobMap(n))
	}
	for _, v := range []any{map[string]int{"a": 1}, []string{"x", ""}, gobOuter{ID: 1, Any: gobInner{Any: map[string]any{"k": 1}}}} {
		data, err := region.Gob.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	reads := map[string]func([]byte) bool{
		"map[string]int": decodeVia[map[string]int](f, region.Gob),
		"[]string":       decodeVia[[]string](f, region.Gob),
		"gobOuter":       decodeVia[gobOuter](f, region.Gob),
		"[]any":          decodeVia[[]any](f, region.Gob),
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, data, gobBound, reads) })
}

func FuzzJSON(f *testing.F) {
	for _, s := range hostileJSON(1024) {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"ID":1,"Inner":{"Name":"x","Tags":["a"]},"ByName":{"k":{"Name":"y"}}}`))
	reads := map[string]func([]byte) bool{
		"any":            decodeVia[any](f, region.JSON),
		"map[string]any": decodeVia[map[string]any](f, region.JSON),
		"[]any":          decodeVia[[]any](f, region.JSON),
		"gobOuter":       decodeVia[gobOuter](f, region.JSON),
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, data, jsonBound, reads) })
}

func FuzzRaw(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("dp\x02\x00 not an entry"))
	f.Add(hostileGobMap(1 << 31))
	readBytes, readString := decodeVia[[]byte](f, region.Raw), decodeVia[string](f, region.Raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		if !readBytes(data) || !readString(data) {
			t.Fatalf("Raw missed on %q: it decodes any bytes", data)
		}
		fuzzDecode(t, data, rawBound, map[string]func([]byte) bool{"[]byte": readBytes, "string": readString})
	})
}

// hostileJSON returns JSON documents of about n bytes that are cheap to write and as dear to
// decode as we know: deep nesting, many small values, long strings, huge numbers.
func hostileJSON(n int) []string {
	rep := func(s string, total int) string { return strings.Repeat(s, max(total/len(s), 1)) }
	list := func(elem string) string { // [elem,elem,...]
		body := rep(elem+",", n-2)
		return "[" + body[:len(body)-1] + "]"
	}
	return []string{
		rep("[", n/2) + rep("]", n/2),
		rep(`{"a":`, n*5/6) + "0" + rep("}", n/6),
		rep(`{"":`, n*4/5) + "{}" + rep("}", n/5),
		list("0"),
		list(`""`),
		list("{}"),
		list("[]"),
		list(`{"":0}`),
		list(`{"a":[]}`),
		list("1e999"),
		list("-0.0000000000000000000000000000001"),
		list("null"),
		`"` + rep(`\u00e9`, n-2) + `"`,
		`"` + rep("x", n-2) + `"`,
		"[" + rep("9", n-2) + "]",
		`{` + strings.TrimSuffix(rep(`"a":0,`, n-2), ",") + `}`,
	}
}

// Decoding hostile JSON allocates at most the multiple of its size that JSON's godoc states.
func TestJSONAllocationIsBounded(t *testing.T) {
	dsts := map[string]func() any{
		"any":            func() any { return new(any) },
		"[]any":          func() any { return new([]any) },
		"map[string]any": func() any { return new(map[string]any) },
		"struct":         func() any { return new(gobOuter) },
	}
	for _, doc := range hostileJSON(1024) {
		data := []byte(doc)
		for name, dst := range dsts {
			got := allocBytes(func() { _ = region.JSON.Unmarshal(data, dst()) })
			if bound := 128*uint64(len(data)) + 4<<10; got > bound {
				t.Errorf("%.20s... (%d bytes) into %s allocated %d bytes (%.1f×), more than %d", doc, len(data), name, got, float64(got)/float64(len(data)), bound)
			} else if testing.Verbose() {
				t.Logf("%-24.24s %5d bytes into %-14s: %7d bytes allocated, %5.1f×", doc, len(data), name, got, float64(got)/float64(len(data)))
			}
		}
	}
}

// Raw allocates one copy of the bytes, and no more.
func TestRawAllocatesOneCopy(t *testing.T) {
	data := bytes.Repeat([]byte{0xff}, 4096)
	var b []byte
	if got := allocBytes(func() { _ = region.Raw.Unmarshal(data, &b) }); got != uint64(len(data)) {
		t.Errorf("Raw into []byte allocated %d bytes for %d", got, len(data))
	}
	var s string
	if got := allocBytes(func() { _ = region.Raw.Unmarshal(data, &s) }); got != uint64(len(data)) {
		t.Errorf("Raw into string allocated %d bytes for %d", got, len(data))
	}
	if err := region.Raw.Unmarshal(data, new(int)); err == nil || errors.Is(err, backends.ErrMalformed) {
		t.Errorf("Raw into *int: %v; want a type error, not a malformed entry", err)
	}
}
