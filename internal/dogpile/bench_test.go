package dogpile

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// benchOp is an Op whose backend costs nothing: every read misses (or, with have, finds an
// expired entry), stores are dropped, and the distributed lock, when there is one, is always
// free. A benchmark of it measures the engine alone.
type benchOp struct {
	key         string
	have        bool
	distributed bool
}

func (o *benchOp) Key() string { return o.key }
func (o *benchOp) Kind() any   { return nil }

func (o *benchOp) Load(context.Context) (Entry, bool, error) {
	return Entry{Value: "old", Created: 1}, o.have, nil
}

func (o *benchOp) Fresh(Entry) bool                               { return false }
func (o *benchOp) Create(context.Context) (any, error)            { return "v", nil }
func (o *benchOp) Store(context.Context, any) error               { return nil }
func (o *benchOp) StoreFailed(_ context.Context, err error) error { return err }
func (o *benchOp) Failed(context.Context, error)                  {}
func (o *benchOp) Observe(Event, time.Duration)                   {}

func (o *benchOp) TryLock(context.Context) (func(), bool, error) {
	if o.distributed {
		return func() {}, true, nil
	}
	return nil, true, nil
}

// benchBatch is benchOp for many keys.
type benchBatch struct {
	keys []string
}

func newBenchBatch(n int) *benchBatch {
	b := &benchBatch{keys: make([]string, n)}
	for i := range b.keys {
		b.keys[i] = "k" + strconv.Itoa(i)
	}
	return b
}

func (b *benchBatch) Key(i int) string { return b.keys[i] }
func (b *benchBatch) Kind() any        { return nil }

func (b *benchBatch) Load(_ context.Context, idx []int) ([]Entry, []bool, error) {
	return make([]Entry, len(idx)), make([]bool, len(idx)), nil
}

func (b *benchBatch) Fresh(Entry) bool { return false }

func (b *benchBatch) Create(_ context.Context, idx []int) (Made, error) {
	m := Made{Vals: make([]any, len(idx)), OK: make([]bool, len(idx))}
	for j := range idx {
		m.Vals[j], m.OK[j] = "v", true
	}
	return m, nil
}

func (b *benchBatch) Store(context.Context, []int, []any, Made) error { return nil }
func (b *benchBatch) StoreFailed(_ context.Context, err error) error  { return err }
func (b *benchBatch) Failed(context.Context, error)                   {}
func (b *benchBatch) Observe(Event, int, time.Duration)               {}

func (b *benchBatch) TryLock(_ context.Context, idx []int) ([]bool, func(), error) {
	taken := make([]bool, len(idx))
	for j := range taken {
		taken[j] = true
	}
	return taken, func() {}, nil
}

func benchResolve(b *testing.B, ctx context.Context, e *Engine, op *benchOp) {
	b.Helper()
	b.Cleanup(e.Close)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Resolve(ctx, op, Entry{Value: "old", Created: 1}, op.have); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolveAbsent is the creation of an absent key for a caller whose context cannot end:
// the creation runs on the caller's goroutine.
func BenchmarkResolveAbsent(b *testing.B) {
	benchResolve(b, context.Background(), New(0), &benchOp{key: "k"})
}

// BenchmarkResolveAbsentCancelable is BenchmarkResolveAbsent for a caller that may leave: the
// creation runs on a goroutine of its own.
func BenchmarkResolveAbsentCancelable(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	benchResolve(b, ctx, New(0), &benchOp{key: "k"})
}

// BenchmarkResolveAbsentDistributed is BenchmarkResolveAbsent with a distributed lock, always
// free, taken and released once a call.
func BenchmarkResolveAbsentDistributed(b *testing.B) {
	benchResolve(b, context.Background(), New(0), &benchOp{key: "k", distributed: true})
}

// BenchmarkResolveAbsentCreationTimeout is BenchmarkResolveAbsent under a creation timeout: the
// creator runs on a goroutine of its own, with a timer.
func BenchmarkResolveAbsentCreationTimeout(b *testing.B) {
	e := New(0)
	e.CreationTimeout = time.Minute
	benchResolve(b, context.Background(), e, &benchOp{key: "k"})
}

// BenchmarkResolveExpired is the regeneration of an expired key by the caller that won it.
func BenchmarkResolveExpired(b *testing.B) {
	benchResolve(b, context.Background(), New(0), &benchOp{key: "k", have: true})
}

// BenchmarkResolveAbsentParallel is BenchmarkResolveAbsent from every P at once, on one key:
// callers meet on its flight, and some wait for the creation another leads.
func BenchmarkResolveAbsentParallel(b *testing.B) {
	e := New(0)
	b.Cleanup(e.Close)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		op := &benchOp{key: "k"}
		for pb.Next() {
			if _, err := e.Resolve(context.Background(), op, Entry{}, false); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchResolveBatch(b *testing.B, ctx context.Context, e *Engine, n int) {
	b.Helper()
	b.Cleanup(e.Close)
	bt := newBenchBatch(n)
	wants := make([]Want, n)
	for i := range wants {
		wants[i] = Want{Index: i}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.ResolveBatch(ctx, bt, wants); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolveBatchAbsent1 is BenchmarkResolveAbsent through ResolveBatch: one absent key.
func BenchmarkResolveBatchAbsent1(b *testing.B) {
	benchResolveBatch(b, context.Background(), New(0), 1)
}

// BenchmarkResolveBatchAbsent10 is ten absent keys created by one creator call, for a caller
// whose context cannot end.
func BenchmarkResolveBatchAbsent10(b *testing.B) {
	benchResolveBatch(b, context.Background(), New(0), 10)
}

// BenchmarkResolveBatchAbsent10Cancelable is BenchmarkResolveBatchAbsent10 for a caller that may
// leave: the creation runs on a goroutine of its own.
func BenchmarkResolveBatchAbsent10Cancelable(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	benchResolveBatch(b, ctx, New(0), 10)
}

// BenchmarkResolveBatchAbsent10CreationTimeout is BenchmarkResolveBatchAbsent10 under a creation
// timeout.
func BenchmarkResolveBatchAbsent10CreationTimeout(b *testing.B) {
	e := New(0)
	e.CreationTimeout = time.Minute
	benchResolveBatch(b, context.Background(), e, 10)
}
