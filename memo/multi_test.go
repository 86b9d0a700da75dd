package memo_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
	"github.com/google/go-cmp/cmp"
)

// userTable is a fake database: a batch query records the ids it was asked for, and ids it does
// not hold are left out of its result.
type userTable struct {
	mu      sync.Mutex
	queries [][]int64
	missing map[int64]bool
}

func (db *userTable) byIDs(_ context.Context, ids []int64) (map[int64]*user, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.queries = append(db.queries, slices.Clone(ids))
	m := make(map[int64]*user, len(ids))
	for _, id := range ids {
		if !db.missing[id] {
			m[id] = &user{ID: id, Name: fmt.Sprintf("user-%d", id)}
		}
	}
	return m, nil
}

func seq(from, to int64) []int64 {
	var ids []int64
	for id := from; id < to; id++ {
		ids = append(ids, id)
	}
	return ids
}

func TestMultiLoadsOnlyWhatIsNotCached(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t)
	db := &userTable{}
	users := memo.Multi(r, db.byIDs, memo.WithNamespace("users"))

	all := seq(0, 200)
	var cached, rest []int64
	for _, id := range all {
		if id%10 == 7 {
			rest = append(rest, id)
		} else {
			cached = append(cached, id)
		}
	}
	if _, err := users.Call(ctx, cached); err != nil {
		t.Fatal(err)
	}
	db.queries = nil
	got, err := users.Call(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	if len(db.queries) != 1 || !slices.Equal(db.queries[0], rest) {
		t.Fatalf("queries %v, want one for the 20 uncached ids %v", db.queries, rest)
	}
	if len(got) != 200 {
		t.Fatalf("%d users, want 200", len(got))
	}
	for _, id := range all {
		if got[id] == nil || got[id].ID != id {
			t.Fatalf("user %d = %+v", id, got[id])
		}
	}
}

func TestMultiMissingIDs(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t)
	db := &userTable{missing: map[int64]bool{2: true}}
	users := memo.Multi(r, db.byIDs, memo.WithNamespace("users"))
	got, err := users.Call(ctx, []int64{1, 2, 3, 1, 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[2]; ok || len(got) != 2 {
		t.Errorf("got %v, want 1 and 3: a missing record is absent, not an error", got)
	}
	if !cmp.Equal(db.queries, [][]int64{{1, 2, 3}}) {
		t.Errorf("queries %v, want [[1 2 3]]: duplicates count once", db.queries)
	}
	// The missing id is not cached: asked again, it is queried again.
	if _, err := users.Call(ctx, []int64{1, 2}); err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(db.queries, [][]int64{{1, 2, 3}, {2}}) {
		t.Errorf("queries %v, want the missing id queried again", db.queries)
	}
	// No ids: no query, an empty map.
	if got, err := users.Call(ctx, nil); err != nil || got == nil || len(got) != 0 {
		t.Errorf("Call(nil) = %v, %v", got, err)
	}
}

func TestMultiHandleMethods(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t)
	db := &userTable{}
	users := memo.Multi(r, db.byIDs, memo.WithNamespace("users"))
	if _, err := users.Call(ctx, []int64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if got, err := users.Cached(ctx, []int64{1, 2, 3, 4}); err != nil || len(got) != 3 || got[4] != nil {
		t.Errorf("Cached = %v, %v; want 1, 2, 3", got, err)
	}
	if err := users.Invalidate(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	if got, _ := users.Cached(ctx, []int64{1, 2, 3}); len(got) != 1 || got[3] == nil {
		t.Errorf("after Invalidate(1, 2): cached %v, want 3 only", got)
	}
	if err := users.Set(ctx, map[int64]*user{9: {ID: 9, Name: "set"}}); err != nil {
		t.Fatal(err)
	}
	db.queries = nil
	got, err := users.Call(ctx, []int64{9, 3})
	if err != nil || got[9].Name != "set" || len(db.queries) != 0 {
		t.Errorf("after Set: %v, %v, queries %v; want the set value, no query", got, err, db.queries)
	}
	got, err = users.Refresh(ctx, []int64{9})
	if err != nil || got[9].Name != "user-9" || !cmp.Equal(db.queries, [][]int64{{9}}) {
		t.Errorf("Refresh = %v, %v, queries %v", got, err, db.queries)
	}
	if got, _ := users.Cached(ctx, []int64{9}); got[9].Name != "user-9" {
		t.Errorf("after Refresh: cached %v", got[9])
	}
	db.queries = nil
	if got, err := users.Uncached(ctx, []int64{3}); err != nil || got[3] == nil || len(db.queries) != 1 {
		t.Errorf("Uncached = %v, %v, queries %v; want a query", got, err, db.queries)
	}
}

func TestMultiSharesEntriesWithFunc(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t)
	db := &userTable{}
	users := memo.Multi(r, db.byIDs, memo.WithNamespace("users"))
	one := memo.Func(r, func(ctx context.Context, id int64) (*user, error) {
		t.Errorf("the single-id function ran for %d: the batch's entry should serve it", id)
		return nil, nil
	}, memo.WithNamespace("users"))
	k1, _ := users.Key(5)
	k2, _ := one.Key(5)
	if k1 != k2 {
		t.Fatalf("Multi key %q, Func key %q: want the same", k1, k2)
	}
	if _, err := users.Call(ctx, []int64{5}); err != nil {
		t.Fatal(err)
	}
	if u, err := one.Call(ctx, 5); err != nil || u.ID != 5 {
		t.Errorf("Func after Multi: %v, %v", u, err)
	}
}

func TestMultiErrorsAndRaces(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t)
	boom := errors.New("database down")
	failing := memo.Multi(r, func(context.Context, []int64) (map[int64]*user, error) { return nil, boom },
		memo.WithNamespace("failing"))
	if got, err := failing.Call(ctx, []int64{1}); !errors.Is(err, boom) || got != nil {
		t.Errorf("Call = %v, %v; want the function's error", got, err)
	}

	// Overlapping batches and single calls on the same cold ids: each id loaded once.
	db := &userTable{}
	users := memo.Multi(r, db.byIDs, memo.WithNamespace("race"))
	single := memo.Func(r, func(ctx context.Context, id int64) (*user, error) {
		m, err := db.byIDs(ctx, []int64{id})
		return m[id], err
	}, memo.WithNamespace("race"))
	var wg sync.WaitGroup
	for g := range int64(8) {
		wg.Go(func() {
			if g%4 == 3 {
				if u, err := single.Call(ctx, g*5); err != nil || u.ID != g*5 {
					t.Errorf("single %d: %v, %v", g*5, u, err)
				}
				return
			}
			ids := seq(g*5, g*5+20)
			if g%2 == 1 {
				slices.Reverse(ids)
			}
			got, err := users.Call(ctx, ids)
			if err != nil || len(got) != len(ids) {
				t.Errorf("batch %d: %d users, %v", g, len(got), err)
			}
		})
	}
	wg.Wait()
	seen := map[int64]int{}
	for _, q := range db.queries {
		for _, id := range q {
			seen[id]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("id %d loaded %d times", id, n)
		}
	}
}

func TestMultiPanicsOnProgrammerErrors(t *testing.T) {
	r := newRegion(t)
	db := &userTable{}
	for name, f := range map[string]func(){
		"nil region":   func() { memo.Multi[int64, *user](nil, db.byIDs) },
		"nil function": func() { memo.Multi[int64, *user](r, nil) },
		"empty ns":     func() { memo.Multi(r, db.byIDs, memo.WithNamespace("")) },
		"unencodable K": func() {
			memo.Multi(r, func(context.Context, []chan int) (map[chan int]int, error) { return nil, nil }, memo.WithNamespace("c"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func TestFreshnessOptions(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t)
	notFound := errors.New("not found")
	var calls int
	h := memo.Func(r, func(_ context.Context, id int64) (*user, error) {
		calls++
		return nil, fmt.Errorf("user %d: %w", id, notFound)
	}, memo.WithNamespace("neg"), region.WithNegativeCaching(notFound, time.Hour), region.WithEarlyRefresh(1), region.WithStaleIfError(time.Minute))
	for range 3 {
		if _, err := h.Call(ctx, 1); !errors.Is(err, notFound) {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Errorf("%d calls of a function whose not-found is cached, want 1", calls)
	}
	db := &userTable{missing: map[int64]bool{2: true}}
	users := memo.Multi(r, db.byIDs, memo.WithNamespace("neg-multi"), region.WithNegativeCaching(notFound, time.Hour))
	for range 2 {
		if got, err := users.Call(ctx, []int64{1, 2}); err != nil || len(got) != 1 {
			t.Fatalf("%v, %v", got, err)
		}
	}
	if !cmp.Equal(db.queries, [][]int64{{1, 2}}) {
		t.Errorf("queries %v: the id left out should be cached as not found", db.queries)
	}
}

func TestHandleStats(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t)
	h := memo.Func(r, loadUser, memo.WithNamespace("stats"))
	for range 3 {
		if _, err := h.Call(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	if s := h.Stats(); s.Hits != 2 || s.Misses != 1 || s.Creations != 1 {
		t.Errorf("Func stats %+v", s)
	}
	db := &userTable{}
	users := memo.Multi(r, db.byIDs, memo.WithNamespace("stats-multi"))
	for range 2 {
		if _, err := users.Call(ctx, []int64{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	if s := users.Stats(); s.Hits != 3 || s.Misses != 3 || s.Creations != 1 {
		t.Errorf("Multi stats %+v", s)
	}
	if s := r.Stats(); s.Hits != 5 || s.Misses != 4 {
		t.Errorf("region stats %+v", s)
	}
}

// A handle's statistics go by its namespace in the region's ViewStats: a Func and a Multi of one
// namespace add up, and region.WithName names a handle otherwise.
func TestHandleStatsByNamespace(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t)
	one := memo.Func(r, loadUser, memo.WithNamespace("users"))
	many := memo.Multi(r, (&userTable{}).byIDs, memo.WithNamespace("users"))
	named := memo.Func(r, loadUser, memo.WithNamespace("other"), region.WithName("profiles"))
	for range 2 {
		if _, err := one.Call(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := many.Call(ctx, []int64{1, 2}); err != nil {
			t.Fatal(err)
		}
		if _, err := named.Call(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	got := r.ViewStats()
	want := map[string]region.Stats{
		// one: a miss, then a hit. many: 1 a hit (one made it) and 2 a miss, then two hits.
		"users":    {Hits: 4, Misses: 2, Creations: 2},
		"profiles": {Hits: 1, Misses: 1, Creations: 1},
	}
	if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".CreationTime"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("ViewStats (-want +got):\n%s", diff)
	}
}

// batchOf200 returns the ids 0 to 199, and those of them cached before the batch (warm) and not
// (cold: every tenth, 20 in all).
func batchOf200() (ids, warm, cold []int64) {
	ids = make([]int64, 200)
	for i := range ids {
		ids[i] = int64(i)
		if i%10 == 4 {
			cold = append(cold, int64(i))
		} else {
			warm = append(warm, int64(i))
		}
	}
	return ids, warm, cold
}

// TestMultiCostsFiveRoundTripsOnRedis counts the round trips of a memo.Multi call of 200 ids, 180
// of them cached, on Redis: an MGET of all 200, then for the 20 missing a pipeline of lock
// scripts, an MGET under the locks, a pipeline of conditional stores and a pipeline of unlock
// scripts; once all are cached, one MGET. The backend wrapper counts the region's calls; the
// go-redis hook counts what reaches the server (a command or a pipeline: one round trip each).
func TestMultiCostsFiveRoundTripsOnRedis(t *testing.T) {
	ctx := t.Context()
	client, hook := counting.RedisClient(t, testserver.StartRedis(t).Addr)
	b := counting.Wrap(redis.New(client))
	r := region.New("batch", region.WithExpiration(time.Hour))
	if err := r.Configure(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	var asked [][]int64
	users := memo.Multi(r, func(_ context.Context, ids []int64) (map[int64]*user, error) {
		asked = append(asked, ids)
		m := make(map[int64]*user, len(ids))
		for _, id := range ids {
			m[id], _ = newUser(ctx, id)
		}
		return m, nil
	}, memo.WithNamespace("users"))

	ids, warm, cold := batchOf200()
	if _, err := users.Call(ctx, warm); err != nil {
		t.Fatal(err)
	}
	asked = nil
	b.Take()
	hook.Take()

	got, err := users.Call(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 || !cmp.Equal(asked, [][]int64{cold}) {
		t.Fatalf("%d users; the loader was asked for %v, want once for %v", len(got), asked, cold)
	}
	wantCalls := map[string][]int{
		"getmulti":           {200, 20}, // two reads: all ids, then the 20 missing under their locks
		"setmultiifnotnewer": {20},      // one write, conditional: a creation
		"trylockmulti":       {20},
		"unlock":             {20},
	}
	if calls := b.Take(); !cmp.Equal(calls, wantCalls) {
		t.Errorf("region calls %v, want %v", calls, wantCalls)
	}
	cmds, pipelines := hook.Take()
	shape := make([]string, len(pipelines))
	for i, p := range pipelines {
		shape[i] = fmt.Sprintf("%d×%s", len(p), p[0])
	}
	wantCmds := []string{"mget/201", "mget/21"}
	wantPipelines := []string{"20×evalsha/6", "20×evalsha/6", "20×evalsha/5"} // lock script, conditional store script, unlock script
	if !cmp.Equal(cmds, wantCmds) || !cmp.Equal(shape, wantPipelines) {
		t.Errorf("Redis saw commands %v and pipelines %v; want %v and %v", cmds, shape, wantCmds, wantPipelines)
	}
	t.Logf("200 ids, 20 missing: %d round trips (%s; %s)", len(cmds)+len(pipelines),
		strings.Join(cmds, ", "), strings.Join(shape, ", "))

	// All cached now: one MGET.
	if _, err := users.Call(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if cmds, pipelines := hook.Take(); !cmp.Equal(cmds, []string{"mget/201"}) || len(pipelines) != 0 {
		t.Errorf("a warm batch sent %v and %v; want one MGET", cmds, pipelines)
	}
}

// TestMultiReadsWithOneGetsPerServerOnMemcached counts the round trips on a pool of two memcached
// servers for a memo.Multi call of 200 ids, 180 of them cached: each of the two reads is one gets
// per server, and each of the 20 missing keys costs its own lock, conditional store and unlock
// (memcached has no multi-key lock or store). The backend wrapper counts the region's calls; the
// connection recorder counts the commands that reach the servers.
func TestMultiReadsWithOneGetsPerServerOnMemcached(t *testing.T) {
	ctx := t.Context()
	pool := testserver.StartMemcachedPool(t, 2)
	client, rec := counting.MemcachedClient(t, pool[0].Addr, pool[1].Addr)
	b := counting.Wrap(memcached.New(client))
	r := region.New("batch", region.WithExpiration(time.Hour))
	if err := r.Configure(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	var asked [][]int64
	users := memo.Multi(r, func(_ context.Context, ids []int64) (map[int64]string, error) {
		asked = append(asked, ids)
		m := make(map[int64]string, len(ids))
		for _, id := range ids {
			m[id] = fmt.Sprint("user ", id)
		}
		return m, nil
	}, memo.WithNamespace("users"))

	ids, warm, cold := batchOf200()
	if _, err := users.Call(ctx, warm); err != nil {
		t.Fatal(err)
	}
	asked = nil
	b.Take()
	rec.Take()

	got, err := users.Call(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 || !cmp.Equal(asked, [][]int64{cold}) {
		t.Fatalf("%d users; the loader was asked for %v, want once for %v", len(got), asked, cold)
	}
	ones := make([]int, 20)
	for i := range ones {
		ones[i] = 1
	}
	// memcached has no multi-key lock: a TryLock and an Unlock a key.
	// memcached has no multi-key conditional store either: one a key.
	wantCalls := map[string][]int{
		"getmulti":      {200, 20}, // two reads: all ids, then the 20 missing under their locks
		"setifnotnewer": ones,      // the writes, conditional: a creation
		"trylock":       ones,
		"unlock":        ones,
	}
	if calls := b.Take(); !cmp.Equal(calls, wantCalls) {
		t.Errorf("region calls %v, want %v", calls, wantCalls)
	}
	counts := map[string]int{}
	for _, tr := range rec.Take() {
		counts[tr.Cmd]++
	}
	// Each GetMulti is one gets per server; a conditional store is a gets and an add (a cas
	// over an entry) per key (the text protocol has no multi-key set, and gomemcache does not
	// pipeline); each lock an add, each unlock a gets and a cas.
	want := map[string]int{"gets": 2*2 + 20 + 20, "add": 20 + 20, "cas": 20}
	if !cmp.Equal(counts, want) {
		t.Errorf("memcached saw %v, want %v", counts, want)
	}
	t.Logf("200 ids, 20 missing, 2 servers: commands %v", counts)
}
