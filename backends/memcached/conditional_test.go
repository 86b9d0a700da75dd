package memcached_test

import (
	"errors"
	"testing"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memcached"
)

// TestSetIfNotNewerChecksBeforeSending: a value too large for the item size limit, or one that
// is not an entry, is an error and nothing is stored, whatever the key held.
func TestSetIfNotNewerChecksBeforeSending(t *testing.T) {
	ctx := t.Context()
	b := memcached.New(newClient(t), memcached.WithPrefix(uniquePrefix(t)))
	held := backends.EncodeEntry(backends.Entry{Created: 1, Payload: []byte("held")})
	if err := b.Set(ctx, "k", held, 0); err != nil {
		t.Fatal(err)
	}
	big := backends.EncodeEntry(backends.Entry{Created: 2, Payload: make([]byte, 1<<20)})
	if stored, err := b.SetIfNotNewer(ctx, "k", big, 0); stored || !errors.Is(err, backends.ErrTooLarge) {
		t.Fatalf("SetIfNotNewer of %d bytes = %v, %v; want an error wrapping backends.ErrTooLarge", len(big), stored, err)
	}
	if stored, err := b.SetIfNotNewer(ctx, "k", []byte("not an entry"), 0); stored || !errors.Is(err, backends.ErrMalformed) {
		t.Fatalf("SetIfNotNewer(not an entry) = %v, %v; want an error wrapping backends.ErrMalformed", stored, err)
	}
	if got, err := b.Get(ctx, "k"); err != nil || string(got) != string(held) {
		t.Fatalf("Get(k) = %q, %v; want the held entry untouched", got, err)
	}
}
