package bench

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/region"
	"github.com/maypok86/otter/v2"
)

// TestRegenerationRate measures how often a hot key is regenerated, in the same run, by dogpile
// (the dogpile lock, no background refresh) and by otter with plain expiry (ExpiryWriting, a
// loader): 100 readers, a 200ms expiration, a 50ms function, for 2.5s of real time each. A value
// that lives its expiration from when it was stored is regenerated once per 250ms
// (expiration + creation), as otter's plain expiry does; one whose expiration counted from the
// creation's start would be regenerated once per 200ms. Figures, not assertions: run it with
// -v (cd bench && go test -run TestRegenerationRate -v).
func TestRegenerationRate(t *testing.T) {
	const (
		readers  = 100
		exp      = 200 * time.Millisecond
		creation = 50 * time.Millisecond
		span     = 2500 * time.Millisecond
	)
	run := func(get func(ctx context.Context, load func() (int, error)) (int, error)) int64 {
		var loads atomic.Int64
		load := func() (int, error) {
			time.Sleep(creation)
			return int(loads.Add(1)), nil
		}
		ctx := context.Background()
		if _, err := get(ctx, load); err != nil {
			t.Fatal(err)
		}
		loads.Store(0)
		end := time.Now().Add(span)
		var wg sync.WaitGroup
		for range readers {
			wg.Go(func() {
				for time.Now().Before(end) {
					if _, err := get(ctx, load); err != nil {
						t.Error(err)
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
		wg.Wait()
		return loads.Load()
	}

	r := region.New("rate", region.WithExpiration(exp), region.WithLogger(slog.New(slog.DiscardHandler)))
	if err := r.Configure(memory.New()); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	v := region.NewView[int](r)
	ours := run(func(ctx context.Context, load func() (int, error)) (int, error) {
		return v.GetOrCreate(ctx, "hot", func(context.Context) (int, error) { return load() })
	})

	c := otter.Must(&otter.Options[string, int]{MaximumSize: 10, ExpiryCalculator: otter.ExpiryWriting[string, int](exp)})
	defer c.StopAllGoroutines()
	theirs := run(func(ctx context.Context, load func() (int, error)) (int, error) {
		return c.Get(ctx, "hot", otter.LoaderFunc[string, int](func(context.Context, string) (int, error) { return load() }))
	})
	per := func(n int64) time.Duration { return span / time.Duration(max(n, 1)) }
	t.Logf("%d readers, expiration %v, creation %v, %v each: dogpile regenerated %d times (once per %v), otter (ExpiryWriting) %d times (once per %v); ratio %.2f",
		readers, exp, creation, span, ours, per(ours), theirs, per(theirs), float64(ours)/float64(max(theirs, 1)))
}
