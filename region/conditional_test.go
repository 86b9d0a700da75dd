package region_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/region"
)

// condBackend is a batchBackend that stores conditionally (backends.ConditionalSetter and
// ConditionalMultiSetter), as Redis, memcached and files do.
type condBackend struct{ *batchBackend }

var (
	_ backends.ConditionalSetter      = condBackend{}
	_ backends.ConditionalMultiSetter = condBackend{}
)

// newer reports whether held is an entry created after v's; s.mu is held.
func newer(held, v []byte) bool {
	h, ok := backends.EntryCreated(held)
	if !ok {
		return false
	}
	c, _ := backends.EntryCreated(v)
	return h > c
}

func (b condBackend) SetIfNotNewer(_ context.Context, k string, v []byte, _ time.Duration) (bool, error) {
	if err := b.record("setifnotnewer", 1); err != nil {
		return false, err
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if held, ok := b.s.entries[k]; ok && newer(held, v) {
		return false, nil
	}
	b.s.entries[k] = slices.Clone(v)
	return true, nil
}

func (b condBackend) SetMultiIfNotNewer(_ context.Context, items map[string][]byte, _ time.Duration) ([]string, error) {
	if err := b.record("setmultiifnotnewer", len(items)); err != nil {
		return nil, err
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	var refused []string
	for k, v := range items {
		if held, ok := b.s.entries[k]; ok && newer(held, v) {
			refused = append(refused, k)
			continue
		}
		b.s.entries[k] = slices.Clone(v)
	}
	return refused, nil
}

// TestWriteWinsOverAnotherProcessCreation: process B begins creating a key; process A then
// writes it (Set, Delete, Refresh, SetMulti, DeleteMulti). B's creation, older than the write,
// answers B's caller but is not stored over the write: both processes then read what A wrote (or,
// after a deletion, create the key again). For a single-key creation and for a batch's.
func TestWriteWinsOverAnotherProcessCreation(t *testing.T) {
	writes := []struct {
		name string
		do   func(ctx context.Context, v *region.View[string]) error
		want string // what a read gets after B's creation ends; "" means absent
	}{
		{"Set", func(ctx context.Context, v *region.View[string]) error { return v.Set(ctx, "k", "written") }, "written"},
		{"SetMulti", func(ctx context.Context, v *region.View[string]) error {
			return v.SetMulti(ctx, map[string]string{"k": "written"})
		}, "written"},
		{"Refresh", func(ctx context.Context, v *region.View[string]) error {
			_, err := v.Refresh(ctx, "k", func(context.Context) (string, error) { return "written", nil })
			return err
		}, "written"},
		{"Delete", func(ctx context.Context, v *region.View[string]) error { return v.Delete(ctx, "k") }, ""},
		{"DeleteMulti", func(ctx context.Context, v *region.View[string]) error { return v.DeleteMulti(ctx, []string{"k", "x"}) }, ""},
	}
	for _, batch := range []bool{false, true} {
		for _, w := range writes {
			name := w.name
			if batch {
				name += "/batch creation"
			}
			t.Run(name, func(t *testing.T) {
				ctx := t.Context()
				s := newShared()
				a := region.NewView[string](newRegion(t, condBackend{newBatchBackend(s)}))
				b := region.NewView[string](newRegion(t, condBackend{newBatchBackend(s)}))
				started, release := make(chan struct{}), make(chan struct{})
				got := make(chan string, 1)
				go func() {
					if batch {
						m, err := b.GetOrCreateMulti(ctx, []string{"k"}, func(context.Context, []string) (map[string]string, error) {
							close(started)
							<-release
							return map[string]string{"k": "created"}, nil
						})
						if err != nil {
							t.Error(err)
						}
						got <- m["k"]
						return
					}
					v, err := b.GetOrCreate(ctx, "k", func(context.Context) (string, error) {
						close(started)
						<-release
						return "created", nil
					})
					if err != nil {
						t.Error(err)
					}
					got <- v
				}()
				<-started
				time.Sleep(time.Millisecond) // the write's stamp after the creation's, on a coarse clock
				if err := w.do(ctx, a); err != nil {
					t.Fatal(err)
				}
				close(release)
				if v := <-got; v != "created" {
					t.Errorf("B's caller got %q, want its creation's value", v)
				}
				for name, v := range map[string]*region.View[string]{"A": a, "B": b} {
					val, ok, err := v.Get(ctx, "k")
					switch {
					case err != nil:
						t.Errorf("%s: %v", name, err)
					case w.want == "" && ok:
						t.Errorf("%s reads %q after a deletion: the older creation stored over it", name, val)
					case w.want != "" && (!ok || val != w.want):
						t.Errorf("%s reads (%q, %v), want %q: the older creation stored over the write", name, val, ok, w.want)
					}
				}
			})
		}
	}
}

// TestCreationStoresOverOlderEntries: the conditional store refuses only newer entries: a
// creation stores over an expired value, over a tombstone older than it, and on an absent key.
func TestCreationStoresOverOlderEntries(t *testing.T) {
	ctx := t.Context()
	s := newShared()
	v := region.NewView[string](newRegion(t, condBackend{newBatchBackend(s)}, region.WithExpiration(time.Millisecond)))
	n := 0
	create := func(context.Context) (string, error) { n++; return "v" + string(rune('0'+n)), nil }
	for i, want := range []string{"v1", "v2"} {
		got, err := v.GetOrCreate(ctx, "k", create)
		if err != nil || got != want {
			t.Fatalf("call %d: (%q, %v), want %q", i, got, err, want)
		}
		time.Sleep(2 * time.Millisecond) // expired
	}
	if err := v.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := v.Get(ctx, "k", region.WithIgnoreExpiration()); ok {
		t.Fatal("a tombstone reads as a value")
	}
	time.Sleep(time.Millisecond)
	if got, err := v.GetOrCreate(ctx, "k", create); err != nil || got != "v3" {
		t.Fatalf("after the deletion: (%q, %v), want v3", got, err)
	}
	if got, ok, _ := v.Get(ctx, "k", region.WithIgnoreExpiration()); !ok || got != "v3" {
		t.Fatalf("a creation after the deletion was not stored over its tombstone: (%q, %v)", got, ok)
	}
}
