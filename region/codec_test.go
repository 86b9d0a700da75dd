package region_test

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/region"
	"github.com/google/go-cmp/cmp"
)

// allocBytes returns the bytes f allocates, the least of three runs (so that an allocation of
// the test framework's in the same moment is not counted).
func allocBytes(f func()) uint64 {
	best := uint64(math.MaxUint64)
	var before, after runtime.MemStats
	for range 3 {
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		best = min(best, after.TotalAlloc-before.TotalAlloc)
	}
	return best
}

// gobUint appends x as gob encodes an unsigned integer.
func gobUint(dst []byte, x uint64) []byte {
	if x < 128 {
		return append(dst, byte(x))
	}
	var be [8]byte
	n := 0
	for v := x; v > 0; v >>= 8 {
		n++
	}
	for i := range n {
		be[n-1-i] = byte(x >> (8 * i))
	}
	return append(append(dst, byte(-n)), be[:n]...)
}

// hostileGobMap is the gob encoding of map[string]int{"a": 1} with its length changed to n: the
// message that defines type 64 as map[string]int, as gob's encoder writes it, then a value
// message that declares n entries and holds one. (Assembled by hand: the id gob's encoder gives
// a type depends on what the process encoded before.)
func hostileGobMap(n uint64) []byte {
	typeMsg := []byte{
		0x0d,       // 13 bytes
		0x7f,       // type id -64: a definition of 64
		0x04, 0x01, // wireType.MapT, its CommonType
		0x02, 0xff, 0x80, // CommonType.Id 64
		0x00,       // end of CommonType
		0x01, 0x0c, // Key: string (6)
		0x01, 0x04, // Elem: int (2)
		0x00, 0x00, // end of MapT, of wireType
	}
	body := gobUint([]byte{0xff, 0x80, 0x00}, n) // type id 64, the singleton's zero delta, the length
	body = append(body, 0x01, 'a', 0x02)         // "a": 1
	return append(gobUint(typeMsg, uint64(len(body))), body...)
}

// hostileGobEntry is hostileGobMap(n) in an entry envelope, as a backend would hold it: 46
// bytes for n = 1<<31.
func hostileGobEntry(n uint64) []byte {
	return backends.EncodeEntry(backends.Entry{Created: time.Now().UnixNano(), Payload: hostileGobMap(n)})
}

func TestGobHostileMapLengthIsMalformed(t *testing.T) {
	if got := len(hostileGobEntry(1 << 31)); got != 46 {
		t.Fatalf("hostile entry is %d bytes, want 46", got)
	}
	for _, n := range []uint64{2, 1 << 22, 1 << 31, math.MaxInt64, math.MaxUint64} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := hostileGobMap(n)
			var err error
			alloc := allocBytes(func() {
				var m map[string]int
				err = region.Gob.Unmarshal(data, &m)
			})
			if !errors.Is(err, backends.ErrMalformed) {
				t.Fatalf("Unmarshal of a map declaring %d entries: %v; want an error wrapping backends.ErrMalformed", n, err)
			}
			if alloc > 4096 {
				t.Errorf("Unmarshal of %d hostile bytes allocated %d bytes, want at most 4096", len(data), alloc)
			}
		})
	}
	var m map[string]int
	if err := region.Gob.Unmarshal(hostileGobMap(1), &m); err != nil || !cmp.Equal(m, map[string]int{"a": 1}) {
		t.Fatalf("the honest stream decodes to %v, %v; want map[a:1]", m, err)
	}
}

// A region reading the hostile entry through a View gets a miss and one malformed error.
func TestGobHostileEntryIsAMiss(t *testing.T) {
	ctx := context.Background()
	var reported []error
	r := region.New("gob", region.WithCodec(region.Gob), region.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		region.WithErrorHandler(func(_ context.Context, err error) { reported = append(reported, err) }))
	be := rawBackend{"k": hostileGobEntry(1 << 31)}
	if err := r.Configure(be); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	v := region.NewView[map[string]int](r)
	got, ok, err := v.Get(ctx, "k")
	if ok || err != nil || got != nil {
		t.Fatalf("Get = %v, %v, %v; want a miss", got, ok, err)
	}
	if len(reported) != 1 || !errors.Is(reported[0], backends.ErrMalformed) {
		t.Fatalf("reported %v; want one error wrapping backends.ErrMalformed", reported)
	}
	if n := r.Stats().Errors.Malformed; n != 1 {
		t.Errorf("Stats().Errors.Malformed = %d, want 1", n)
	}
}

// rawBackend holds entries as bytes under their (unmangled) keys; it is read only.
type rawBackend map[string][]byte

func (b rawBackend) Get(_ context.Context, key string) ([]byte, error) {
	if v, ok := b[key]; ok {
		return v, nil
	}
	return nil, backends.ErrNotFound
}
func (rawBackend) Set(context.Context, string, []byte, time.Duration) error { return nil }
func (rawBackend) Delete(context.Context, string) error                     { return nil }

// panicCodec panics on every Unmarshal, as a user's codec might on bytes it did not expect.
type panicCodec struct{}

func (panicCodec) Marshal(v any) ([]byte, error)      { return region.JSON.Marshal(v) }
func (panicCodec) Unmarshal(data []byte, v any) error { panic("index out of range") }

// A codec's panic on stored bytes is a malformed entry: a miss and a reported error.
func TestCodecPanicIsMalformed(t *testing.T) {
	ctx := context.Background()
	var reported []error
	r := region.New("panics", region.WithCodec(panicCodec{}), region.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		region.WithErrorHandler(func(_ context.Context, err error) { reported = append(reported, err) }))
	be := rawBackend{"k": backends.EncodeEntry(backends.Entry{Created: time.Now().UnixNano(), Payload: []byte("1")})}
	if err := r.Configure(be); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, ok, err := region.NewView[int](r).Get(ctx, "k")
	if ok || err != nil || got != 0 {
		t.Fatalf("Get = %v, %v, %v; want a miss", got, ok, err)
	}
	if len(reported) != 1 || !errors.Is(reported[0], backends.ErrMalformed) || !strings.Contains(reported[0].Error(), "panicked") {
		t.Fatalf("reported %v; want one error wrapping backends.ErrMalformed that says the codec panicked", reported)
	}
}

type gobInner struct {
	Name  string
	Tags  []string
	Any   any
	Bytes []byte
}

type gobOuter struct {
	ID     int64
	U      uint16
	F      float64
	C      complex128
	B      bool
	Arr    [3]int
	Inner  gobInner
	Ptr    *gobInner
	List   []gobInner
	ByName map[string]*gobInner
	ByInt  map[int][]string
	Nested map[string]map[string]int
	Any    any
	When   time.Time // a BinaryMarshaler
	Empty  struct{}
}

func init() {
	gob.Register(gobInner{})
	gob.Register(map[string]any{})
	gob.Register([]any{})
}

// The scan that Gob runs before decoding accepts everything gob's encoder writes.
func TestGobCheckAcceptsWhatGobWrites(t *testing.T) {
	inner := gobInner{Name: "in", Tags: []string{"a", "", strings.Repeat("x", 300)}, Any: gobInner{Name: "deeper", Any: 7}, Bytes: []byte{0, 255}}
	values := []any{
		0, -1, math.MaxInt64, uint8(200), "", strings.Repeat("s", 1000), []byte{}, 1.5, true, complex(1, 2),
		[]int{}, []int{1, 2, 3}, [2]string{"a", "b"}, map[string]int{}, map[string]int{"a": 1, "b": -2},
		map[int]map[string][]float64{1: {"x": {1, 2}}, 2: nil},
		inner,
		gobOuter{
			ID: -3, U: 65535, F: math.Inf(1), C: 3i, B: true, Arr: [3]int{1, 0, 3}, Inner: inner, Ptr: &inner,
			List: []gobInner{inner, {}, inner}, ByName: map[string]*gobInner{"x": &inner},
			ByInt: map[int][]string{0: {"z"}}, Nested: map[string]map[string]int{"a": {"b": 1}},
			Any:  map[string]any{"k": []any{1, "two", gobInner{Any: map[string]any{"deep": 3.0}}}},
			When: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC),
		},
		[]any{nil, 1, gobInner{}, map[string]any{"a": []any{gobInner{Any: gobInner{Any: []any{"x"}}}}}},
		map[string]any{"a": 1, "b": gobInner{Name: "b"}},
	}
	for _, v := range values {
		data, err := region.Gob.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", v, err)
		}
		dst := newOf(v)
		if err := region.Gob.Unmarshal(data, dst); err != nil {
			t.Errorf("Unmarshal(Marshal(%T)): %v", v, err)
			continue
		}
		// Into any too, where gob skips what the destination lacks (by the interface's counts).
		var skip struct{ Unrelated int }
		if err := region.Gob.Unmarshal(data, &skip); errors.Is(err, backends.ErrMalformed) {
			t.Errorf("Unmarshal(Marshal(%T)) into another struct: %v", v, err)
		}
	}
}

// newOf returns a pointer to a new zero value of v's type.
func newOf(v any) any {
	switch v.(type) {
	case int:
		return new(int)
	case uint8:
		return new(uint8)
	case string:
		return new(string)
	case []byte:
		return new([]byte)
	case float64:
		return new(float64)
	case bool:
		return new(bool)
	case complex128:
		return new(complex128)
	case []int:
		return new([]int)
	case [2]string:
		return new([2]string)
	case map[string]int:
		return new(map[string]int)
	case map[int]map[string][]float64:
		return new(map[int]map[string][]float64)
	case gobInner:
		return new(gobInner)
	case gobOuter:
		return new(gobOuter)
	case []any:
		return new([]any)
	case map[string]any:
		return new(map[string]any)
	}
	panic(fmt.Sprintf("newOf: %T", v))
}

// Version 1 entries keep their unknown flag bits ("kept, not rejected"): a version 1 value whose
// flags byte has bit 0 set reads as its value, not as a cached "not found" (bit 0 is FlagNegative
// only from version 2 on).
func TestV1FlagsAreKept(t *testing.T) {
	ctx := t.Context()
	b := newBatchBackend(newShared())
	r := newRegion(t, b, region.WithExpiration(time.Hour))
	v := region.NewView[string](r)
	raw := encodeV1(time.Now().UnixNano(), `"v1 value"`)
	raw[3] = 0xa5
	if err := b.Set(ctx, "k", raw, 0); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := v.Get(ctx, "k"); !ok || err != nil || got != "v1 value" {
		t.Errorf("a version 1 entry with flags 0xa5: Get = %q, %v, %v; want its value", got, ok, err)
	}
}
