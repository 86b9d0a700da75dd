package wrap_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/wrap"
	"github.com/dogpile-go/dogpile/region"
)

// A hook of one's own: here it prints each call as it returns. A real one would record a
// metric or a trace span.
func ExampleNew() {
	ctx := context.Background()
	mem := memory.New(memory.WithCopy()) // bytes, not Go values: Get and Set are used
	defer mem.Close()
	b := wrap.New(mem, func(ctx context.Context, c *wrap.Call, next func(context.Context) error) error {
		err := next(ctx)
		fmt.Printf("%s key=%q keys=%d hits=%d bytes=%d miss=%v\n", c.Op, c.Key, len(c.Keys), c.Hits, c.Bytes, errors.Is(err, backends.ErrNotFound))
		return err
	})

	_ = b.Set(ctx, "greeting", []byte("hello"), 0)
	_, _ = b.Get(ctx, "greeting")
	_, _ = b.Get(ctx, "absent")
	if mg, ok := backends.As[backends.MultiGetter](b); ok {
		_, _ = mg.GetMulti(ctx, []string{"greeting", "absent"})
	}
	// Output:
	// set key="greeting" keys=0 hits=0 bytes=5 miss=false
	// get key="greeting" keys=0 hits=1 bytes=5 miss=false
	// get key="absent" keys=0 hits=0 bytes=0 miss=true
	// getmulti key="" keys=2 hits=1 bytes=5 miss=false
}

func ExampleLog() {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{} // they change from run to run
			}
			return a
		},
	}))
	mem := memory.New(memory.WithCopy())
	defer mem.Close()
	b := wrap.New(mem, wrap.Log(logger))

	_ = b.Set(ctx, "user:42", []byte(`{"name":"gopher"}`), 0)
	_, _ = b.Get(ctx, "user:42")
	_, _ = b.Get(ctx, "user:43")
	// Output:
	// level=DEBUG msg="dogpile: backend call" op=set key=user:42 bytes=17
	// level=DEBUG msg="dogpile: backend call" op=get key=user:42 bytes=17 hits=1
	// level=DEBUG msg="dogpile: backend call" op=get key=user:43 bytes=0 hits=0
}

func ExampleFaults() {
	ctx := context.Background()
	faults := wrap.NewFaults(1)
	mem := memory.New(memory.WithCopy())
	defer mem.Close()
	b := wrap.New(mem, faults.Hook)

	// The next two writes fail; then the cache recovers.
	_ = faults.Set(wrap.Fault{FailNext: 2}, wrap.OpSet)
	for range 3 {
		err := b.Set(ctx, "k", []byte("v"), 0)
		fmt.Println(err, errors.Is(err, wrap.ErrInjected))
	}
	// Output:
	// wrap: injected fault into set true
	// wrap: injected fault into set true
	// <nil> false
}

// A region that fails open keeps serving while its cache fails, creating every value it cannot
// read; one that fails closed returns the cache's errors.
func ExampleFaults_region() {
	ctx := context.Background()
	for _, policy := range []region.FailurePolicy{region.FailOpen, region.FailClosed} {
		faults := wrap.NewFaults(1)
		_ = faults.Set(wrap.Fault{Rate: 1}) // every call fails
		r := region.New("users", region.WithFailurePolicy(policy), region.WithLogger(slog.New(slog.DiscardHandler)))
		_ = r.Configure(wrap.New(memory.New(), faults.Hook))
		users := region.NewView[string](r)

		name, err := users.GetOrCreate(ctx, "user:42", func(context.Context) (string, error) {
			return "gopher", nil
		})
		fmt.Printf("%q %v\n", name, errors.Is(err, wrap.ErrInjected))
		_ = r.Close()
	}
	// Output:
	// "gopher" false
	// "" true
}
