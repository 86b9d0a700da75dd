package region_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/keys"
	"github.com/dogpile-go/dogpile/region"
)

// A region is declared where it is used and configured once the program knows its environment.
var products = region.New("products",
	region.WithExpiration(5*time.Minute),
	region.WithKeyMangler(keys.Prefix("shop:")))

func Example() {
	ctx := context.Background()
	view := region.NewView[string](products)

	_, _, err := view.Get(ctx, "p1")
	fmt.Println("before Configure:", errors.Is(err, region.ErrNotConfigured))

	if err := products.Configure(memory.New(memory.WithMaxEntries(10_000))); err != nil {
		panic(err)
	}
	defer products.Close()

	name, _ := view.GetOrCreate(ctx, "p1", func(context.Context) (string, error) {
		return "teapot", nil // the expensive query
	})
	fmt.Println(name)
	// Output:
	// before Configure: true
	// teapot
}

func ExampleRegion_Invalidate() {
	ctx := context.Background()
	r := region.New("prices")
	if err := r.Configure(memory.New()); err != nil {
		panic(err)
	}
	defer r.Close()
	prices := region.NewView[int](r)
	_ = prices.Set(ctx, "tea", 3)

	// Soft: every entry is expired, but still served while one caller regenerates it.
	_ = r.Invalidate(ctx, region.Soft)
	_, fresh, _ := prices.Get(ctx, "tea")
	stale, found, _ := prices.Get(ctx, "tea", region.WithIgnoreExpiration())
	fmt.Println("soft:", fresh, stale, found)

	// Hard: every entry is absent.
	_ = r.Invalidate(ctx, region.Hard)
	_, found, _ = prices.Get(ctx, "tea", region.WithIgnoreExpiration())
	fmt.Println("hard:", found)
	// Output:
	// soft: false 3 true
	// hard: false
}

func ExampleView_GetOrCreate() {
	r := region.New("reports", region.WithExpiration(time.Hour))
	if err := r.Configure(memory.New()); err != nil {
		panic(err)
	}
	defer r.Close()
	reports := region.NewView[[]string](r, region.WithExpiration(10*time.Minute))

	calls := 0
	build := func(context.Context) ([]string, error) {
		calls++
		return []string{"q1", "q2"}, nil
	}
	for range 3 {
		_, _ = reports.GetOrCreate(context.Background(), "quarterly", build)
	}
	fmt.Println("built", calls, "time(s)")
	// Output: built 1 time(s)
}

// Token is what an authorization server hands out: it says how long it lives.
type Token struct {
	Value    string
	Lifetime time.Duration
}

// WithExpirationFor lets each value say how long it stays fresh: here a token is refreshed a
// minute before its own lifetime ends.
func ExampleWithExpirationFor() {
	cache := region.New("tokens")
	if err := cache.Configure(memory.New()); err != nil {
		panic(err)
	}
	defer cache.Close()
	tokens := region.NewView[Token](cache, region.WithExpirationFor(func(t Token, _ error) time.Duration {
		return t.Lifetime - time.Minute
	}))

	t, _ := tokens.GetOrCreate(context.Background(), "api", func(context.Context) (Token, error) {
		return Token{Value: "s3cr3t", Lifetime: time.Hour}, nil
	})
	fmt.Println(t.Value)
	// Output: s3cr3t
}
