package region_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/region"
)

// Stress: random cancellations, errors, panics, Goexit-free creators, background refresh and a
// distributed locker, with Close racing the calls. Every call must return; Close must return;
// goleak (TestMain) checks nothing is left.
func TestStressCloseRacesCalls(t *testing.T) {
	for _, bg := range []int{0, 2} {
		t.Run(fmt.Sprint("bg=", bg), func(t *testing.T) {
			l := &locking{Backend: memory.New(), held: map[string]bool{}}
			opts := []region.Option{region.WithExpiration(time.Millisecond), region.WithLockTimeout(7 * time.Second)}
			if bg > 0 {
				opts = append(opts, region.WithBackgroundRefresh(bg))
			}
			r := newRegion(t, l, opts...)
			v := region.NewView[int](r)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for g := range 16 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						key := fmt.Sprint("k", rand.IntN(8))
						ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(300))*time.Microsecond)
						if g%4 == 0 {
							ctx, cancel = context.Background(), func() {}
						}
						_, err := v.GetOrCreate(ctx, key, func(ctx context.Context) (int, error) {
							switch rand.IntN(10) {
							case 0:
								panic("p")
							case 1:
								return 0, errors.New("e")
							}
							select {
							case <-time.After(time.Duration(rand.IntN(200)) * time.Microsecond):
							case <-ctx.Done():
								return 0, ctx.Err()
							}
							return i, nil
						})
						cancel()
						_ = err
					}
				})
			}
			time.Sleep(200 * time.Millisecond)
			done := make(chan struct{})
			go func() { _ = r.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not return")
			}
			close(stop)
			wg.Wait()
			l.mu.Lock()
			defer l.mu.Unlock()
			if len(l.held) != 0 {
				t.Fatalf("locks still held after Close: %v", l.held)
			}
		})
	}
}
