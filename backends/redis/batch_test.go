package redis_test

import (
	"context"
	"testing"

	"github.com/dogpile-go/dogpile/backends/redis"
)

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
