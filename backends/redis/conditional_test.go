package redis_test

import (
	"errors"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
)

func stamped(created int64) []byte {
	return backends.EncodeEntry(backends.Entry{Created: created, Payload: []byte("v")})
}

// TestSetIfNotNewerReplacesOtherTypes: a key that holds a list (written by something else) is
// replaced by a conditional store, as SET replaces it, rather than failing every creation.
func TestSetIfNotNewerReplacesOtherTypes(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := uniquePrefix(t)
	b := redis.New(client, redis.WithPrefix(prefix))
	if err := client.RPush(ctx, prefix+"list", "a", "b").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Del(ctx, prefix+"list").Err() })
	v := stamped(1)
	if stored, err := b.SetIfNotNewer(ctx, "list", v, time.Minute); err != nil || !stored {
		t.Fatalf("SetIfNotNewer over a list = %v, %v; want stored", stored, err)
	}
	if got, err := b.Get(ctx, "list"); err != nil || string(got) != string(v) {
		t.Fatalf("Get after SetIfNotNewer over a list = %q, %v", got, err)
	}
	if err := client.RPush(ctx, prefix+"list", "a").Err(); err == nil {
		t.Fatal("the key still holds a list")
	}
}

// TestSetIfNotNewerAfterScriptFlush: a server that lost its scripts (SCRIPT FLUSH, a restart)
// answers EVALSHA with NOSCRIPT; both calls fall back to EVAL and store.
func TestSetIfNotNewerAfterScriptFlush(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	b := redis.New(client, redis.WithPrefix(uniquePrefix(t)))
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if stored, err := b.SetIfNotNewer(ctx, "k", stamped(1), 0); err != nil || !stored {
		t.Fatalf("SetIfNotNewer after SCRIPT FLUSH = %v, %v; want stored", stored, err)
	}
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	refused, err := b.SetMultiIfNotNewer(ctx, map[string][]byte{"k": stamped(0), "other": stamped(0)}, 0)
	if err != nil || len(refused) != 1 || refused[0] != "k" {
		t.Fatalf("SetMultiIfNotNewer after SCRIPT FLUSH = %q, %v; want [k] refused", refused, err)
	}
	if _, err := b.Get(ctx, "other"); err != nil {
		t.Fatalf("Get(other): %v", err)
	}
}

// TestSetIfNotNewerRefusesNonEntries: a value that is not an entry has no created-at to compare;
// storing it would defeat the check, so it is an error, nothing is sent for it, and a batch
// stores the others.
func TestSetIfNotNewerRefusesNonEntries(t *testing.T) {
	ctx := t.Context()
	b := redis.New(newClient(t), redis.WithPrefix(uniquePrefix(t)))
	if stored, err := b.SetIfNotNewer(ctx, "k", []byte("not an entry"), 0); stored || !errors.Is(err, backends.ErrMalformed) {
		t.Fatalf("SetIfNotNewer(not an entry) = %v, %v; want an error wrapping backends.ErrMalformed", stored, err)
	}
	refused, err := b.SetMultiIfNotNewer(ctx, map[string][]byte{"k": []byte("not an entry"), "good": stamped(1)}, 0)
	if len(refused) != 0 || !errors.Is(err, backends.ErrMalformed) {
		t.Fatalf("SetMultiIfNotNewer with a non-entry = %q, %v; want an error wrapping backends.ErrMalformed", refused, err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Get(k) after a refused value: %v; want a miss", err)
	}
	if _, err := b.Get(ctx, "good"); err != nil {
		t.Fatalf("Get(good): %v; want the other item stored", err)
	}
}
