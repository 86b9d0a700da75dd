// Package backendtest checks that a backend meets the contract of package backends. It has the
// role that slogtest has for slog handlers and fstest.TestFS for file systems: every backend of
// this module runs it, and so should a backend written elsewhere.
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backends.Backend {
//			return mybackend.New(addr)
//		})
//	}
//
// # What it checks
//
// Run checks the required methods (a miss is an error wrapping backends.ErrNotFound, round trips
// of binary values up to 1 MiB, overwrite, delete, delete of an absent key, ownership of the
// slices passed in and returned, storage TTLs, a range of keys) and every optional capability
// that backends.As finds on the backend: MultiGetter, MultiSetter, MultiDeleter (gaps, empty and
// duplicate inputs), Locker (exclusion, expiry of a lock after its timeout, and an Unlock by a
// holder whose lock expired leaving the next holder's lock alone), MultiLocker (the same locks as
// TryLock's, taken and released together, a stale release leaving the next holder alone),
// ValueStore when StoresValues reports true, ConditionalSetter (stores over an absent key, an
// older, equal-aged or foreign entry; refuses, leaving the key alone, under a newer entry or
// tombstone, with created-at times that differ in the last byte, in a carry or in the sign, and
// entries of format version 1; the TTL rule of Set; goroutines storing at once leave the newest;
// a Set that returned is never undone by a concurrent conditional store of an older entry) and
// ConditionalMultiSetter (the same cases in one batch, refused keys reported exactly, empty input
// without I/O, concurrent batches). A capability the backend lacks is a skipped subtest, so
// `go test -v` shows what was not checked. Last, 16 goroutines run 200 mixed operations each on
// shared keys; run the tests with -race.
//
// # What it needs from the backend
//
//   - newBackend is called once per subtest and must return a new backend each time: Run closes
//     it after the subtest if backends.As finds an io.Closer. The backends may share one server.
//   - Keys are made of the bytes [a-z0-9:_-] only and are at most 200 bytes long, which every
//     server we know accepts (memcached allows 250 bytes without spaces or control characters).
//     Each subtest puts a prefix of its own, from its name and a random number, in front of its
//     keys, so that runs sharing a server (including concurrent runs) do not see each other's
//     keys. Run deletes the keys it wrote when a subtest ends.
//   - Values are entry envelopes (backends.EncodeEntry) of 12 bytes to 1 MiB. A memcached server
//     needs an item size limit above its 1 MB default (memcached -I 2m).
//   - The TTL and lock subtests work in real time: they set a TTL or lock timeout of 1s or 500ms
//     and poll every 50ms, for up to 5s, until the entry or lock is gone. A backend may round
//     these times up to whole seconds, but not down: an entry set with a 1s TTL must be there
//     right after Set. The whole suite takes a few seconds.
//   - Beyond the method comments of package backends, the suite expects that a Set without TTL
//     over an entry with one removes the TTL, and that Delete also removes what SetValue stored.
//
// Subtests run one after another; Run does not call t.Parallel.
package backendtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// Timing of the subtests that wait for a TTL or lock timeout to pass.
const (
	shortTTL     = time.Second
	shortLock    = 500 * time.Millisecond
	longLock     = 10 * time.Second
	pollInterval = 50 * time.Millisecond
	pollTimeout  = 5 * time.Second
)

// Run runs the conformance suite against the backends newBackend returns, one per subtest. See
// the package documentation for what it checks and what it needs. It takes a few seconds, most
// of it waiting for TTLs and lock timeouts to pass.
func Run(t *testing.T, newBackend func(t *testing.T) backends.Backend) {
	t.Helper()
	for _, tc := range suite {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(newHarness(t, newBackend))
		})
	}
}

var suite = []struct {
	name string
	run  func(h *harness)
}{
	{"Miss", testMiss},
	{"RoundTrip", testRoundTrip},
	{"Overwrite", testOverwrite},
	{"Delete", testDelete},
	{"DeleteAbsent", testDeleteAbsent},
	{"GetReturnsCallersSlice", testGetReturnsCallersSlice},
	{"SetDoesNotRetainValue", testSetDoesNotRetainValue},
	{"Keys", testKeys},
	{"TTL", testTTL},
	{"MultiGet", testMultiGet},
	{"MultiSet", testMultiSet},
	{"MultiDelete", testMultiDelete},
	{"LockExclusive", testLockExclusive},
	{"LockContended", testLockContended},
	{"LockTimeout", testLockTimeout},
	{"LockUnlockByStaleHolder", testLockUnlockByStaleHolder},
	{"LockMulti", testLockMulti},
	{"ValueRoundTrip", testValueRoundTrip},
	{"ConditionalSet", testConditionalSet},
	{"ConditionalSetTTL", testConditionalSetTTL},
	{"ConditionalSetConcurrent", testConditionalSetConcurrent},
	{"ConditionalSetAtomic", testConditionalSetAtomic},
	{"ConditionalMultiSet", testConditionalMultiSet},
	{"ConditionalMultiSetConcurrent", testConditionalMultiSetConcurrent},
	{"Concurrency", testConcurrency},
}

// harness is one subtest's backend, context and key namespace.
type harness struct {
	*testing.T
	b      backends.Backend
	ctx    context.Context
	prefix string

	mu   sync.Mutex // guards keys
	keys []string   // data keys handed out, deleted at the end of the subtest
}

func newHarness(t *testing.T, newBackend func(t *testing.T) backends.Backend) *harness {
	t.Helper()
	b := newBackend(t)
	if b == nil {
		t.Fatal("newBackend returned nil")
	}
	// Cleanups run last-in first-out: the keys are deleted before the backend is closed.
	if c, ok := backends.As[io.Closer](b); ok {
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	h := &harness{T: t, b: b, ctx: t.Context(), prefix: keyPrefix(t.Name())}
	t.Cleanup(func() {
		ctx := context.Background() // t.Context is done by now
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, k := range h.keys {
			if err := b.Delete(ctx, k); err != nil {
				t.Logf("cleanup: Delete(%q): %v", k, err)
			}
		}
	})
	return h
}

// keyPrefix derives a key prefix from a test name: its bytes outside [a-z0-9_-] become '_' ('/'
// becomes ':'), it is cut to 64 bytes, and a random number follows, so that runs sharing a server
// do not meet.
func keyPrefix(testName string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(testName) {
		if sb.Len() >= 64 {
			break
		}
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '_', r == '-':
			sb.WriteRune(r)
		case r == '/':
			sb.WriteByte(':')
		default:
			sb.WriteByte('_')
		}
	}
	sb.WriteByte(':')
	sb.WriteString(strconv.FormatUint(rand.Uint64(), 36))
	sb.WriteByte(':')
	return sb.String()
}

// key returns the subtest's key for name (which must use [a-z0-9:_-]) and remembers it for
// deletion at the end of the subtest.
func (h *harness) key(name string) string {
	k := h.prefix + name
	h.mu.Lock()
	h.keys = append(h.keys, k)
	h.mu.Unlock()
	return k
}

// lockKey returns the subtest's key for a lock; locks are not deleted at the end, they expire.
func (h *harness) lockKey(name string) string {
	return h.prefix + "lock:" + name
}

// entry returns an envelope around payload.
func entry(payload []byte) []byte {
	return backends.EncodeEntry(backends.Entry{Created: time.Now().UnixNano(), Payload: payload})
}

func (h *harness) set(key string, value []byte, ttl time.Duration) {
	h.Helper()
	if err := h.b.Set(h.ctx, key, value, ttl); err != nil {
		h.Fatalf("Set(%q, %d bytes, %v): %v", key, len(value), ttl, err)
	}
}

func (h *harness) wantValue(key string, want []byte) {
	h.Helper()
	got, err := h.b.Get(h.ctx, key)
	if err != nil {
		h.Fatalf("Get(%q): %v; want %d bytes", key, err, len(want))
	}
	if !bytes.Equal(got, want) {
		h.Fatalf("Get(%q) = %s; want %s", key, describe(got), describe(want))
	}
}

func (h *harness) wantMiss(key string) {
	h.Helper()
	got, err := h.b.Get(h.ctx, key)
	if err == nil {
		h.Fatalf("Get(%q) = %s, nil; want an error wrapping backends.ErrNotFound (a miss is never nil, nil)", key, describe(got))
	}
	if !errors.Is(err, backends.ErrNotFound) {
		h.Fatalf("Get(%q) error = %v; want an error wrapping backends.ErrNotFound", key, err)
	}
}

func (h *harness) del(key string) {
	h.Helper()
	if err := h.b.Delete(h.ctx, key); err != nil {
		h.Fatalf("Delete(%q): %v", key, err)
	}
}

// present reports whether Get finds key, failing on errors other than a miss.
func (h *harness) present(key string) bool {
	h.Helper()
	_, err := h.b.Get(h.ctx, key)
	switch {
	case err == nil:
		return true
	case errors.Is(err, backends.ErrNotFound):
		return false
	default:
		h.Fatalf("Get(%q): %v", key, err)
		return false
	}
}

// poll calls cond every pollInterval until it returns true, and fails with what after pollTimeout.
func (h *harness) poll(what string, cond func() bool) {
	h.Helper()
	deadline := time.Now().Add(pollTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.Fatalf("%s: still not the case after %v", what, pollTimeout)
		}
		select {
		case <-time.After(pollInterval):
		case <-h.ctx.Done():
			h.Fatalf("%s: %v", what, h.ctx.Err())
		}
	}
}

// describe shows a value in a failure message without printing a megabyte.
func describe(b []byte) string {
	if b == nil {
		return "nil"
	}
	if len(b) <= 48 {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:48])) + "... (" + strconv.Itoa(len(b)) + " bytes)"
}

func testMiss(h *harness) {
	h.wantMiss(h.key("never-set"))
}

func testRoundTrip(h *harness) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	big := make([]byte, 1<<20-backends.EntryHeaderSize) // the envelope is 1 MiB
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(big)
	values := []struct {
		name  string
		value []byte
	}{
		{"text", entry([]byte(`{"name":"gopher"}`))},
		{"all-bytes", entry(bytes.Repeat(allBytes, 4))},
		{"empty-payload", entry(nil)},
		{"nul-bytes", entry(make([]byte, 100))},
		{"1mib", entry(big)},
	}
	for _, v := range values {
		h.set(h.key(v.name), v.value, 0)
	}
	for _, v := range values {
		h.wantValue(h.key(v.name), v.value)
	}
}

func testOverwrite(h *harness) {
	k := h.key("k")
	h.set(k, entry([]byte("a first, longer value")), 0)
	second := entry([]byte("second"))
	h.set(k, second, 0)
	h.wantValue(k, second)
}

func testDelete(h *harness) {
	k, other := h.key("k"), h.key("other")
	h.set(k, entry([]byte("v")), 0)
	ov := entry([]byte("other"))
	h.set(other, ov, 0)
	h.del(k)
	h.wantMiss(k)
	h.del(k) // now absent
	h.wantValue(other, ov)
}

func testDeleteAbsent(h *harness) {
	h.del(h.key("never-set"))
}

func testGetReturnsCallersSlice(h *harness) {
	k := h.key("k")
	v := entry([]byte("payload"))
	h.set(k, v, 0)
	got, err := h.b.Get(h.ctx, k)
	if err != nil {
		h.Fatalf("Get(%q): %v", k, err)
	}
	for i := range got {
		got[i] ^= 0xff
	}
	h.wantValue(k, v)
}

func testSetDoesNotRetainValue(h *harness) {
	k := h.key("k")
	v := entry([]byte("payload"))
	want := bytes.Clone(v)
	h.set(k, v, 0)
	for i := range v {
		v[i] ^= 0xff
	}
	h.wantValue(k, want)
}

func testKeys(h *harness) {
	long := "long-"
	long += strings.Repeat("k", 200-len(h.prefix)-len(long))
	names := []string{
		"a",
		"x",
		"x:y", // "x" is a prefix of it
		"abcdefghijklmnopqrstuvwxyz-0123456789_:",
		"::--__",
		long,
	}
	keys := make([]string, len(names))
	values := make([][]byte, len(names))
	for i, name := range names {
		keys[i], values[i] = h.key(name), entry([]byte(name))
		h.set(keys[i], values[i], 0)
	}
	if n := len(keys[len(keys)-1]); n != 200 {
		h.Fatalf("long key is %d bytes, want 200", n)
	}
	for i, k := range keys {
		h.wantValue(k, values[i])
	}
}

func testTTL(h *harness) {
	expiring := h.key("expiring")
	kept := h.key("kept")
	long := h.key("long")
	reset := h.key("reset")

	// reset is set with a TTL first, then overwritten without one: the write replaces the TTL.
	resetValue := entry([]byte("reset"))
	h.set(reset, entry([]byte("reset-with-ttl")), shortTTL)
	h.set(reset, resetValue, 0)
	keptValue, longValue := entry([]byte("kept")), entry([]byte("long"))
	h.set(kept, keptValue, 0)
	h.set(long, longValue, time.Hour)
	h.set(expiring, entry([]byte("expiring")), shortTTL)

	var multiExpiring string
	if ms, ok := backends.As[backends.MultiSetter](h.b); ok {
		multiExpiring = h.key("multi-expiring")
		if err := ms.SetMulti(h.ctx, map[string][]byte{multiExpiring: entry([]byte("m"))}, shortTTL); err != nil {
			h.Fatalf("SetMulti(ttl=%v): %v", shortTTL, err)
		}
	}
	var valueExpiring string
	vs, ok := backends.As[backends.ValueStore](h.b)
	if ok && vs.StoresValues() {
		valueExpiring = h.key("value-expiring")
		if err := vs.SetValue(h.ctx, valueExpiring, backends.Item{Value: "v"}, shortTTL); err != nil {
			h.Fatalf("SetValue(ttl=%v): %v", shortTTL, err)
		}
	}

	// A backend may round a TTL up, never down: right after Set, the entry is there.
	if !h.present(expiring) {
		h.Fatalf("Get(%q) right after Set with ttl=%v: miss", expiring, shortTTL)
	}
	h.poll("entries set with ttl="+shortTTL.String()+" are gone", func() bool {
		if h.present(expiring) {
			return false
		}
		if multiExpiring != "" && h.present(multiExpiring) {
			return false
		}
		if valueExpiring != "" {
			_, err := vs.GetValue(h.ctx, valueExpiring)
			if err == nil {
				return false
			}
			if !errors.Is(err, backends.ErrNotFound) {
				h.Fatalf("GetValue(%q): %v", valueExpiring, err)
			}
		}
		return true
	})
	h.wantValue(kept, keptValue)
	h.wantValue(long, longValue)
	h.wantValue(reset, resetValue)
}

func testConcurrency(h *harness) {
	const (
		goroutines = 16
		ops        = 200
		nKeys      = 8
	)
	names := make([]string, nKeys)
	keys := make([]string, nKeys)
	valueKeys := make([]string, nKeys)
	for i := range keys {
		names[i] = "k" + strconv.Itoa(i)
		keys[i] = h.key(names[i])
		valueKeys[i] = h.key("value-" + names[i])
	}
	lockKey := h.lockKey("shared")
	mg, hasMG := backends.As[backends.MultiGetter](h.b)
	ms, hasMS := backends.As[backends.MultiSetter](h.b)
	md, hasMD := backends.As[backends.MultiDeleter](h.b)
	locker, hasLocker := backends.As[backends.Locker](h.b)
	vs, hasVS := backends.As[backends.ValueStore](h.b)
	hasVS = hasVS && vs.StoresValues()

	// check verifies that a value read under keys[i] is one that some goroutine wrote there.
	check := func(op string, i int, v []byte) bool {
		e, err := backends.DecodeEntry(v)
		if err != nil {
			h.Errorf("%s(%q) returned bytes that are not the entry written: %v", op, keys[i], err)
			return false
		}
		if !bytes.HasPrefix(e.Payload, []byte(names[i]+"#")) {
			h.Errorf("%s(%q) returned %q, which was written under another key", op, keys[i], e.Payload)
			return false
		}
		return true
	}
	// ok reports whether err is nil or a miss, and reports any other error.
	ok := func(op, key string, err error) bool {
		if err != nil && !errors.Is(err, backends.ErrNotFound) {
			h.Errorf("%s(%q): %v", op, key, err)
			return false
		}
		return true
	}

	// multiOps are the multi-key operations the backend has, each on keys[i] and another key.
	var multiOps []func(rng *rand.Rand, i int) bool
	if hasMG {
		multiOps = append(multiOps, func(rng *rand.Rand, i int) bool {
			m, err := mg.GetMulti(h.ctx, []string{keys[i], keys[rng.IntN(nKeys)], keys[i]})
			if !ok("GetMulti", keys[i], err) {
				return false
			}
			for j, key := range keys {
				if v, found := m[key]; found && !check("GetMulti", j, v) {
					return false
				}
			}
			return true
		})
	}
	if hasMS {
		multiOps = append(multiOps, func(rng *rand.Rand, i int) bool {
			j := rng.IntN(nKeys)
			items := map[string][]byte{
				keys[i]: entry([]byte(names[i] + "#multi")),
				keys[j]: entry([]byte(names[j] + "#multi")),
			}
			return ok("SetMulti", keys[i], ms.SetMulti(h.ctx, items, 0))
		})
	}
	if hasMD {
		multiOps = append(multiOps, func(rng *rand.Rand, i int) bool {
			return ok("DeleteMulti", keys[i], md.DeleteMulti(h.ctx, []string{keys[i], keys[rng.IntN(nKeys)]}))
		})
	}
	if cs, hasCS := backends.As[backends.ConditionalSetter](h.b); hasCS {
		multiOps = append(multiOps, func(rng *rand.Rand, i int) bool {
			v := entry([]byte(names[i] + "#conditional"))
			_, err := cs.SetIfNotNewer(h.ctx, keys[i], v, time.Hour*time.Duration(rng.IntN(2)))
			return ok("SetIfNotNewer", keys[i], err)
		})
	}
	if cms, hasCMS := backends.As[backends.ConditionalMultiSetter](h.b); hasCMS {
		multiOps = append(multiOps, func(rng *rand.Rand, i int) bool {
			j := rng.IntN(nKeys)
			items := map[string][]byte{
				keys[i]: entry([]byte(names[i] + "#conditional-multi")),
				keys[j]: entry([]byte(names[j] + "#conditional-multi")),
			}
			_, err := cms.SetMultiIfNotNewer(h.ctx, items, 0)
			return ok("SetMultiIfNotNewer", keys[i], err)
		})
	}

	var wg sync.WaitGroup
	var failed atomic.Bool
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 0x5eed))
			for n := range ops {
				if failed.Load() {
					return
				}
				i := rng.IntN(nKeys)
				k := keys[i]
				var good bool
				switch op := rng.IntN(12); {
				case op < 4:
					v := entry([]byte(names[i] + "#" + strconv.Itoa(g) + "." + strconv.Itoa(n)))
					good = ok("Set", k, h.b.Set(h.ctx, k, v, time.Hour*time.Duration(rng.IntN(2))))
				case op < 8:
					v, err := h.b.Get(h.ctx, k)
					good = ok("Get", k, err) && (err != nil || check("Get", i, v))
				case op == 8:
					good = ok("Delete", k, h.b.Delete(h.ctx, k))
				case op == 9 && len(multiOps) > 0:
					good = multiOps[rng.IntN(len(multiOps))](rng, i)
				case op == 10 && hasLocker:
					l, got, err := locker.TryLock(h.ctx, lockKey, longLock)
					good = ok("TryLock", lockKey, err)
					if got && good {
						good = ok("Unlock", lockKey, l.Unlock(h.ctx))
					}
				case op == 11 && hasVS:
					vk := valueKeys[i]
					if rng.IntN(2) == 0 {
						good = ok("SetValue", vk, vs.SetValue(h.ctx, vk, backends.Item{Value: names[i], Created: int64(n)}, 0))
						break
					}
					item, err := vs.GetValue(h.ctx, vk)
					good = ok("GetValue", vk, err)
					if good && err == nil && item.Value != names[i] {
						h.Errorf("GetValue(%q) = %v, which was written under another key", vk, item.Value)
						good = false
					}
				default:
					_, err := h.b.Get(h.ctx, k)
					good = ok("Get", k, err)
				}
				if !good {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
}
