package redis_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
	"github.com/google/go-cmp/cmp"
)

// TestBatchRoundTrips counts the round trips of a memo.Multi call of 200 ids, 180 of them
// cached, on Redis. The backend wrapper counts the region's calls; the go-redis hook counts what reaches
// the server (a command or a pipeline: one round trip each).
func TestBatchRoundTrips(t *testing.T) {
	ctx := t.Context()
	client, hook := countingClient(t)
	b := counting.Wrap(redis.New(client, redis.WithPrefix(uniquePrefix(t))))
	r := region.New("batch", region.WithExpiration(time.Hour))
	if err := r.Configure(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	var asked [][]int64
	users := memo.Multi(r, func(_ context.Context, ids []int64) (map[int64]*benchUser, error) {
		asked = append(asked, ids)
		m := make(map[int64]*benchUser, len(ids))
		for _, id := range ids {
			m[id] = newBenchUser(id)
		}
		return m, nil
	}, memo.WithNamespace("users"))

	ids := make([]int64, 200)
	var warm, cold []int64
	for i := range ids {
		ids[i] = int64(i)
		if i%10 == 4 {
			cold = append(cold, int64(i))
		} else {
			warm = append(warm, int64(i))
		}
	}
	if _, err := users.Call(ctx, warm); err != nil {
		t.Fatal(err)
	}
	asked = nil
	b.Take()
	hook.take()

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
	cmds, pipelines := hook.take()
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
	if cmds, pipelines := hook.take(); !cmp.Equal(cmds, []string{"mget/201"}) || len(pipelines) != 0 {
		t.Errorf("a warm batch sent %v and %v; want one MGET", cmds, pipelines)
	}
}

// TestBatchAcrossProcessesOnRedis has two regions (two processes, as far as Redis can tell) send
// overlapping batches of cold keys in opposite orders through one Redis: every key is created
// once, and no lock is left behind.
func TestBatchAcrossProcessesOnRedis(t *testing.T) {
	client := newClient(t)
	prefix := uniquePrefix(t)
	made := make(chan string, 1000)
	create := func(_ context.Context, keys []string) (map[string]string, error) {
		time.Sleep(20 * time.Millisecond) // long enough for the other process to meet the locks
		m := make(map[string]string, len(keys))
		for _, k := range keys {
			made <- k
			m[k] = "v" + k
		}
		return m, nil
	}
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	rev := make([]string, len(keys))
	for i, k := range keys {
		rev[len(keys)-1-i] = k
	}
	for round := range 5 {
		rp := fmt.Sprintf("%s%d:", prefix, round)
		errs := make(chan error, 2)
		for _, ks := range [][]string{keys, rev} {
			r := region.New("p")
			if err := r.Configure(redis.New(client, redis.WithPrefix(rp))); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			go func() {
				got, err := region.NewView[string](r).GetOrCreateMulti(t.Context(), ks, create)
				if err == nil && len(got) != len(ks) {
					err = fmt.Errorf("%d values for %d keys", len(got), len(ks))
				}
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		seen := map[string]bool{}
		for len(made) > 0 {
			k := <-made
			if seen[k] {
				t.Errorf("round %d: %s created twice", round, k)
			}
			seen[k] = true
		}
		if len(seen) != len(keys) {
			t.Errorf("round %d: %d keys created, want %d", round, len(seen), len(keys))
		}
		if n, err := client.Keys(t.Context(), rp+"\x00lock\x00*").Result(); err != nil || len(n) != 0 {
			t.Errorf("round %d: locks left: %v, %v", round, n, err)
		}
	}
}

// On a Ring too, GetMulti leaves keys holding another Redis type out of the map, as its godoc says
// and MGET does on a single node or a Cluster, instead of failing with WRONGTYPE and losing the
// other keys' values.
func TestRingGetMultiSkipsOtherTypes(t *testing.T) {
	ctx := t.Context()
	ring := newRing(t)
	prefix := uniquePrefix(t)
	if err := ring.LPush(ctx, prefix+"list", "x").Err(); err != nil {
		t.Fatal(err)
	}
	client := newClient(t)
	if err := client.LPush(ctx, prefix+"list", "x").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Del(context.Background(), prefix+"list") })
	single := redis.New(client, redis.WithPrefix(prefix))
	if m, err := single.GetMulti(ctx, []string{"list", "absent"}); err != nil || len(m) != 0 {
		t.Fatalf("single node: GetMulti = %v, %v; want an empty map", m, err)
	}
	b := redis.New(ring, redis.WithPrefix(prefix))
	if err := b.Set(ctx, "a", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	m, err := b.GetMulti(ctx, []string{"a", "list"})
	if err != nil {
		t.Fatalf("ring: GetMulti with a key holding a list = %v, %v; want {a:1} as on a single node and a Cluster", m, err)
	}
}
