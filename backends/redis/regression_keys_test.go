package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/region"
)

// TestLockKeyIsNotADataKey: the lock of key "report" used to be stored under the same Redis key
// as the data of key "report:lock". A region that cached both (View keys are the user's strings)
// could never take the lock of "report" again: GetOrCreate of the cold key waited until its
// context ended, although nobody held that lock. Locks now have a namespace of their own.
func TestLockKeyIsNotADataKey(t *testing.T) {
	client := newClient(t)
	r := region.New("collide", region.WithExpiration(time.Hour))
	if err := r.Configure(redis.New(client, redis.WithPrefix(uniquePrefix(t)))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	v := region.NewView[string](r)
	if err := v.Set(t.Context(), "report:lock", "an ordinary cached value"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := v.GetOrCreate(ctx, "report", func(context.Context) (string, error) { return "fresh", nil })
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetOrCreate(\"report\") on a cold key with no lock holder: %v; the data key "+
			"\"report:lock\" is taken for report's lock", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}
