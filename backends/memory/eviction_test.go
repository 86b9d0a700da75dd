package memory

import (
	"strconv"
	"testing"

	"github.com/dogpile-go/dogpile/backends"
)

func TestMaxEntriesEvicts(t *testing.T) {
	const bound = 1000
	b := New(WithMaxEntries(bound))
	t.Cleanup(func() { _ = b.Close() })
	ctx := t.Context()
	for i := range 10 * bound {
		k := "k" + strconv.Itoa(i)
		if i%2 == 0 {
			_ = b.Set(ctx, k, []byte("v"), 0)
		} else {
			_ = b.SetValue(ctx, k, backends.Item{Value: i}, 0)
		}
	}
	b.cache.CleanUp()
	if n := b.Len(); n > bound || n < bound/2 {
		t.Fatalf("Len() = %d after writing %d entries with WithMaxEntries(%d); want about %d", n, 10*bound, bound, bound)
	}
}
