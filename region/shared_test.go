package region_test

import (
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/region"
)

// TestSharedInvalidationByPolling: three "processes" (regions of one name, each with its own
// backend object) on one store without a Notifier. An invalidation on one reaches the others by
// their poll, and a process configured afterwards starts with it.
func TestSharedInvalidationByPolling(t *testing.T) {
	ctx := t.Context()
	s := newShared()
	open := func() (*region.Region, *region.View[string]) {
		r := newRegion(t, newBatchBackend(s), region.WithSharedInvalidation(10*time.Millisecond))
		return r, region.NewView[string](r)
	}
	r1, v1 := open()
	_, v2 := open()
	_, v3 := open()
	if err := v1.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []*region.View[string]{v2, v3} {
		if _, ok, _ := v.Get(ctx, "k"); !ok {
			t.Fatal("the value is not shared")
		}
	}
	time.Sleep(time.Millisecond) // the invalidation after the write, on a clock that may tick coarsely
	if err := r1.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	for i, v := range []*region.View[string]{v2, v3} {
		start := time.Now()
		for {
			if _, ok, _ := v.Get(ctx, "k"); !ok {
				t.Logf("process %d saw the hard invalidation after %v (poll every 10ms)", i+2, time.Since(start))
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("process %d still serves the value 5s after a hard invalidation elsewhere", i+2)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// A process that starts now reads it at Configure.
	_, v4 := open()
	if _, ok, _ := v4.Get(ctx, "k", region.IgnoreExpiration()); ok {
		t.Error("a process configured after the invalidation serves the value")
	}
	// A value written after the invalidation is served everywhere.
	if err := v1.Set(ctx, "k", "new"); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := v4.Get(ctx, "k"); !ok || got != "new" {
		t.Errorf("after a new write: %q, %v", got, ok)
	}
	// Soft: expired everywhere, served old while regenerated.
	time.Sleep(time.Millisecond)
	if err := r1.Invalidate(ctx, region.Soft); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, fresh, _ := v4.Get(ctx, "k")
		old, there, _ := v4.Get(ctx, "k", region.IgnoreExpiration())
		if !fresh && there && old == "new" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a soft invalidation elsewhere did not expire the value here")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSharedInvalidationOption(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("WithSharedInvalidation(0) accepted")
		}
	}()
	region.New("x", region.WithSharedInvalidation(0))
}
