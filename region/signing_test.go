package region_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/region"
)

var (
	key1 = region.SigningKey{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}
	key2 = region.SigningKey{ID: "k2", Secret: bytes.Repeat([]byte{2}, 32)}
)

// errorsSeen is an error handler that keeps what it is given.
type errorsSeen struct{ errs []error }

func (e *errorsSeen) handler() region.Option {
	return region.WithErrorHandler(func(_ context.Context, err error) { e.errs = append(e.errs, err) })
}

// TestSignedEntriesRefuseWhatTheyDidNotSign: with signed entries, a value stored by the region
// reads back; an entry changed by one byte, copied under another key's name, written unsigned
// (by a region that does not sign) or signed by an unknown key is a miss and a reported error
// that wraps ErrSignature, never a value.
func TestSignedEntriesRefuseWhatTheyDidNotSign(t *testing.T) {
	ctx := t.Context()
	s := newShared()
	var seen errorsSeen
	signed := region.NewView[string](newRegion(t, newBatchBackend(s), region.WithSignedEntries(key1), seen.handler()))
	if err := signed.Set(ctx, "a", "value of a"); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := signed.Get(ctx, "a"); err != nil || !ok || got != "value of a" {
		t.Fatalf("a signed entry does not read back: (%q, %v, %v)", got, ok, err)
	}
	raw := func(k string) []byte {
		s.mu.Lock()
		defer s.mu.Unlock()
		return bytes.Clone(s.entries[k])
	}
	put := func(k string, v []byte) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.entries[k] = v
	}
	good := raw("a")
	if e, err := backends.DecodeEntry(good); err != nil || e.Flags&backends.FlagSigned == 0 {
		t.Fatalf("stored entry: %v, flags %v; want it signed", err, e.Flags)
	}

	other := region.NewView[string](newRegion(t, newBatchBackend(s)))
	if err := other.Set(ctx, "unsigned", "from a region that does not sign"); err != nil {
		t.Fatal(err)
	}
	byK2 := region.NewView[string](newRegion(t, newBatchBackend(s), region.WithSignedEntries(key2)))
	if err := byK2.Set(ctx, "k2", "signed by another key"); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(good)
	tampered[backends.EntryHeaderSize+1] ^= 1 // one byte of the payload
	put("tampered", tampered)
	put("copied", good) // a's entry under another name
	flagCleared := bytes.Clone(good)
	flagCleared[3] &^= backends.FlagSigned
	put("flag cleared", flagCleared)

	for _, k := range []string{"tampered", "copied", "unsigned", "k2", "flag cleared"} {
		seen.errs = nil
		got, ok, err := signed.Get(ctx, k)
		if err != nil || ok {
			t.Errorf("%s: (%q, %v, %v); want a miss", k, got, ok, err)
		}
		if len(seen.errs) != 1 || !errors.Is(seen.errs[0], region.ErrSignature) || !errors.Is(seen.errs[0], backends.ErrMalformed) {
			t.Errorf("%s: reported %v; want one error wrapping ErrSignature and ErrMalformed", k, seen.errs)
		}
	}
	if n := signed.Stats().Errors.Malformed; n != 5 {
		t.Errorf("Stats.Errors.Malformed = %d, want 5", n)
	}
	// A region that does not sign reads signed entries, without their trailer.
	if got, ok, err := other.Get(ctx, "a"); err != nil || !ok || got != "value of a" {
		t.Errorf("a region that does not sign reads a signed entry as (%q, %v, %v)", got, ok, err)
	}
}

// TestSignedEntriesRotate: keys rotate with every process verifying the old and the new key
// while the signing key changes.
func TestSignedEntriesRotate(t *testing.T) {
	ctx := t.Context()
	s := newShared()
	old := region.NewView[string](newRegion(t, newBatchBackend(s), region.WithSignedEntries(key1, key2)))
	rotated := region.NewView[string](newRegion(t, newBatchBackend(s), region.WithSignedEntries(key2, key1)))
	done := region.NewView[string](newRegion(t, newBatchBackend(s), region.WithSignedEntries(key2)))
	if err := old.Set(ctx, "by old", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := rotated.Set(ctx, "by new", "v2"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		v    *region.View[string]
		k    string
		want bool
	}{
		{old, "by new", true}, {rotated, "by old", true}, {done, "by new", true}, {done, "by old", false},
	} {
		if _, ok, _ := tc.v.Get(ctx, tc.k); ok != tc.want {
			t.Errorf("%q read: %v, want %v", tc.k, ok, tc.want)
		}
	}
}

// TestSignedEntriesCoverEveryWrite: creations, cached "not found" entries, batch writes and
// deletions' tombstones are signed too, and read back through a region that verifies them.
func TestSignedEntriesCoverEveryWrite(t *testing.T) {
	ctx := t.Context()
	s := newShared()
	errNotFound := errors.New("no such user")
	v := region.NewView[string](newRegion(t, condBackend{newBatchBackend(s)}, region.WithSignedEntries(key1),
		region.WithNegativeCaching(errNotFound, time.Minute)))
	if _, err := v.GetOrCreate(ctx, "made", func(context.Context) (string, error) { return "made", nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := v.GetOrCreate(ctx, "missing", func(context.Context) (string, error) { return "", errNotFound }); !errors.Is(err, errNotFound) {
		t.Fatal(err)
	}
	if err := v.SetMulti(ctx, map[string]string{"m1": "1", "m2": "2"}); err != nil {
		t.Fatal(err)
	}
	if err := v.Delete(ctx, "m2"); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	for k, raw := range s.entries {
		if e, err := backends.DecodeEntry(raw); err != nil || e.Flags&backends.FlagSigned == 0 {
			t.Errorf("%q stored unsigned (%v)", k, err)
		}
	}
	s.mu.Unlock()
	if got, ok, _ := v.Get(ctx, "made"); !ok || got != "made" {
		t.Errorf("made: (%q, %v)", got, ok)
	}
	if _, err := v.GetOrCreate(ctx, "missing", func(context.Context) (string, error) { return "created again", nil }); !errors.Is(err, errNotFound) {
		t.Errorf("the cached not-found did not verify: %v", err)
	}
	if _, ok, _ := v.Get(ctx, "m2"); ok {
		t.Error("a deleted key reads as a value")
	}
}

// TestSignedEntriesParam: signed_entries in a URL or document, and its errors, which never show
// a secret.
func TestSignedEntriesParam(t *testing.T) {
	const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==" // 36 bytes
	configure := func(value string) error {
		r := region.New("signing")
		defer r.Close()
		return r.ConfigureURL("memory://?signed_entries=" + url.QueryEscape(value))
	}
	if err := configure("k1:" + secret + ",k0:" + secret); err != nil {
		t.Errorf("two keys: %v", err)
	}
	for _, bad := range []string{"k1", ":" + secret, "k1:not base64!", "k1:c2hvcnQ=", "k1:" + secret + ",k1:" + secret} {
		err := configure(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if !strings.Contains(err.Error(), "signed_entries") {
			t.Errorf("%q: the error does not name the parameter: %v", bad, err)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "c2hvcnQ") {
			t.Errorf("%q: the error shows the secret: %v", bad, err)
		}
	}
	r := region.New("signing")
	defer r.Close()
	b := memory.New()
	defer b.Close() // not taken by a failed ConfigureWith
	if err := r.ConfigureWith(b, region.WithSignedEntries(region.SigningKey{ID: "k", Secret: []byte("short")})); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
}

// BenchmarkHitEnvelope is a hit through the entry envelope and the JSON codec, with no network
// (the memory backend copying through the codec), so that what signing adds shows plainly: compare
// with BenchmarkHitEnvelopeSigned in the same run.
func BenchmarkHitEnvelope(b *testing.B) { benchHitEnvelope(b) }

// BenchmarkHitEnvelopeSigned is BenchmarkHitEnvelope with signed entries: the HMAC-SHA256 of a
// 200-byte entry on every read.
func BenchmarkHitEnvelopeSigned(b *testing.B) { benchHitEnvelope(b, region.WithSignedEntries(key1)) }

func benchHitEnvelope(b *testing.B, opts ...region.Option) {
	r := region.New("bench", append([]region.Option{region.WithExpiration(time.Hour)}, opts...)...)
	if err := r.Configure(memory.New(memory.WithCopy())); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	type user struct {
		ID    int64
		Name  string
		Email string
	}
	v := region.NewView[user](r)
	ctx := context.Background()
	if err := v.Set(ctx, "u", user{42, strings.Repeat("g", 120), "gopher@example.com"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if u, ok, err := v.Get(ctx, "u"); err != nil || !ok || u.ID != 42 {
			b.Fatal(u, ok, err)
		}
	}
}
