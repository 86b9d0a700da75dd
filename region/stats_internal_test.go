package region

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestStripedCountsEveryAdd adds from more goroutines than there are cells, on more Ps than
// there are cells (so that Ps share them) and on fewer, GOMAXPROCS changing as they add, and
// finds every add in the sum.
func TestStripedCountsEveryAdd(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(40))
	var s striped
	stop := make(chan struct{})
	changed := make(chan struct{})
	go func() {
		defer close(changed)
		for _, n := range []int{3, 64, 1, 17, 40} {
			select {
			case <-stop:
				return
			default:
			}
			runtime.GOMAXPROCS(n)
			runtime.Gosched()
		}
	}()
	const goroutines, adds = 64, 1000
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := range adds {
				s.add()
				if i%100 == 0 {
					runtime.Gosched() // move between Ps mid-count
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-changed
	if got := s.load(); got != goroutines*adds {
		t.Fatalf("load() = %d after %d adds", got, goroutines*adds)
	}
}

// BenchmarkStripedAdd compares the hit counter with one atomic word, from one goroutine and from
// every P at once (-cpu 1,2,4).
func BenchmarkStripedAdd(b *testing.B) {
	b.Run("counter=striped", func(b *testing.B) {
		s := new(striped)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.add()
			}
		})
	})
	b.Run("counter=atomic", func(b *testing.B) {
		n := new(atomic.Uint64)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n.Add(1)
			}
		})
	})
}
