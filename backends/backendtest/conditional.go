package backendtest

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// stamped returns an entry created at created, with payload.
func stamped(created int64, payload string) []byte {
	return backends.EncodeEntry(backends.Entry{Created: created, Payload: []byte(payload)})
}

// stampedV1 returns an entry of format version 1 (no delta), created at created, as earlier
// releases wrote it.
func stampedV1(created int64, payload string) []byte {
	b := []byte{'d', 'p', 1, 0}
	b = binary.BigEndian.AppendUint64(b, uint64(created))
	return append(b, payload...)
}

// tombstone returns the entry a region writes in place of a deletion made at created.
func tombstone(created int64) []byte {
	return backends.EncodeEntry(backends.Entry{Created: created, Flags: backends.FlagDeleted})
}

// created returns the created-at of the entry under key, failing if there is none.
func (h *harness) created(key string) int64 {
	h.Helper()
	v, err := h.b.Get(h.ctx, key)
	if err != nil {
		h.Fatalf("Get(%q): %v", key, err)
	}
	c, ok := backends.EntryCreated(v)
	if !ok {
		h.Fatalf("Get(%q) = %s: not an entry", key, describe(v))
	}
	return c
}

func (h *harness) conditionalSetter() backends.ConditionalSetter {
	h.Helper()
	cs, ok := backends.As[backends.ConditionalSetter](h.b)
	if !ok {
		h.Skip("the backend does not implement backends.ConditionalSetter")
	}
	return cs
}

// setIfNotNewer calls SetIfNotNewer, fails on an error, and checks what the key holds after:
// value if it reports stored, what it held before otherwise.
func (h *harness) setIfNotNewer(cs backends.ConditionalSetter, key string, value []byte, ttl time.Duration, wantStored bool) {
	h.Helper()
	before, _ := h.b.Get(h.ctx, key)
	stored, err := cs.SetIfNotNewer(h.ctx, key, value, ttl)
	if err != nil {
		h.Fatalf("SetIfNotNewer(%q, %s, %v): %v", key, describe(value), ttl, err)
	}
	if stored != wantStored {
		h.Fatalf("SetIfNotNewer(%q, %s, %v) over %s = stored %v; want %v", key, describe(value), ttl, describe(before), stored, wantStored)
	}
	if stored {
		h.wantValue(key, value)
	} else {
		h.wantValue(key, before)
	}
}

// conditionalCases are what a key holds and what a conditional store writes over it, and whether
// it must store. Created-at times differ in their last byte only, in a carry, or in the sign,
// which a comparison of floating-point numbers or of unsigned bytes would get wrong.
func conditionalCases() []struct {
	name       string
	held       []byte // nil: absent
	value      []byte
	wantStored bool
} {
	now := time.Now().UnixNano()
	return []struct {
		name       string
		held       []byte
		value      []byte
		wantStored bool
	}{
		{"absent", nil, stamped(now, "new"), true},
		{"older", stamped(now-1, "held"), stamped(now, "new"), true},
		{"newer", stamped(now+1, "held"), stamped(now, "new"), false},
		{"equal", stamped(now, "held"), stamped(now, "new"), true},
		{"much-newer", stamped(now+int64(time.Hour), "held"), stamped(now, "new"), false},
		{"carry-older", stamped(0xff, "held"), stamped(0x100, "new"), true},
		{"carry-newer", stamped(0x100, "held"), stamped(0xff, "new"), false},
		{"negative-older", stamped(-1, "held"), stamped(1, "new"), true},
		{"negative-newer", stamped(1, "held"), stamped(-1, "new"), false},
		{"both-negative", stamped(-2, "held"), stamped(-1, "new"), true},
		{"version-1-older", stampedV1(now-1, "held"), stamped(now, "new"), true},
		{"version-1-newer", stampedV1(now+1, "held"), stamped(now, "new"), false},
		{"tombstone-newer", tombstone(now + 1), stamped(now, "new"), false},
		{"tombstone-older", tombstone(now - 1), stamped(now, "new"), true},
		{"tombstone-over-older", stamped(now-1, "held"), tombstone(now), true},
		{"new-version-1", stamped(now-1, "held"), stampedV1(now, "new"), true},
		// Bytes that are not an entry, whatever they seem to say, are replaced.
		{"foreign", []byte("a value some other program wrote, long enough"), stamped(now, "new"), true},
		{"unknown-version", append([]byte{'d', 'p', 3, 0}, stamped(now+1, "held")[4:]...), stamped(now, "new"), true},
		{"short-version-2", stamped(now+1, "held")[:16], stamped(now, "new"), true},
		{"bad-magic", append([]byte{'d', 'q'}, stamped(now+1, "held")[2:]...), stamped(now, "new"), true},
	}
}

func testConditionalSet(h *harness) {
	cs := h.conditionalSetter()
	for _, tc := range conditionalCases() {
		k := h.key(tc.name)
		if tc.held != nil {
			h.set(k, tc.held, 0)
		}
		h.setIfNotNewer(cs, k, tc.value, 0, tc.wantStored)
	}

	// The backend does not retain the value.
	k := h.key("retained")
	v := stamped(time.Now().UnixNano(), "payload")
	want := slices.Clone(v)
	h.setIfNotNewer(cs, k, v, 0, true)
	for i := range v {
		v[i] ^= 0xff
	}
	h.wantValue(k, want)
}

func testConditionalSetTTL(h *harness) {
	cs := h.conditionalSetter()
	now := time.Now().UnixNano()
	expiring, over, reset, refused := h.key("expiring"), h.key("over"), h.key("reset"), h.key("refused")

	h.setIfNotNewer(cs, expiring, stamped(now, "expiring"), shortTTL, true)
	h.set(over, stamped(now-1, "held"), time.Hour)
	h.setIfNotNewer(cs, over, stamped(now, "over"), shortTTL, true)
	// A store without TTL over an entry with one removes the TTL, as Set does.
	h.set(reset, stamped(now-1, "reset-with-ttl"), shortTTL)
	resetValue := stamped(now, "reset")
	h.setIfNotNewer(cs, reset, resetValue, 0, true)
	// A refusal leaves the held entry's TTL alone.
	refusedValue := stamped(now+1, "kept")
	h.set(refused, refusedValue, 0)
	h.setIfNotNewer(cs, refused, stamped(now, "refused"), shortTTL, false)

	var multiExpiring string
	if cms, ok := backends.As[backends.ConditionalMultiSetter](h.b); ok {
		multiExpiring = h.key("multi-expiring")
		refused, err := cms.SetMultiIfNotNewer(h.ctx, map[string][]byte{multiExpiring: stamped(now, "m")}, shortTTL)
		if err != nil || len(refused) != 0 {
			h.Fatalf("SetMultiIfNotNewer(ttl=%v) = %q, %v; want nothing refused", shortTTL, refused, err)
		}
		if !h.present(multiExpiring) {
			h.Fatalf("Get(%q) right after SetMultiIfNotNewer with ttl=%v: miss", multiExpiring, shortTTL)
		}
	}
	h.poll("entries stored conditionally with ttl="+shortTTL.String()+" are gone", func() bool {
		return !h.present(expiring) && !h.present(over) && (multiExpiring == "" || !h.present(multiExpiring))
	})
	h.wantValue(reset, resetValue)
	h.wantValue(refused, refusedValue)
}

// testConditionalSetConcurrent: goroutines store conditionally, at once, entries of distinct
// created-at under one key; the newest must end up held, whatever the order they ran in.
func testConditionalSetConcurrent(h *harness) {
	cs := h.conditionalSetter()
	const goroutines, each = 16, 25
	k := h.key("k")
	base := time.Now().UnixNano()
	stamps := make([]int64, goroutines*each)
	for i := range stamps {
		stamps[i] = base + int64(i)
	}
	rand.Shuffle(len(stamps), func(i, j int) { stamps[i], stamps[j] = stamps[j], stamps[i] })
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for _, c := range stamps[g*each : (g+1)*each] {
				if _, err := cs.SetIfNotNewer(h.ctx, k, stamped(c, strconv.FormatInt(c, 10)), 0); err != nil {
					h.Errorf("SetIfNotNewer(%q, created %d): %v", k, c, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if h.Failed() {
		return
	}
	newest := base + int64(len(stamps)) - 1
	h.wantValue(k, stamped(newest, strconv.FormatInt(newest, 10)))
}

// testConditionalSetAtomic: one goroutine writes with Set entries ever newer, while others store
// conditionally entries older than the last Set began with. Once a Set has returned, its entry
// must stay held until the next one: a conditional store that read the key before the Set and
// wrote after it (a check and a write that are not one step) would put an older entry back.
func testConditionalSetAtomic(h *harness) {
	cs := h.conditionalSetter()
	const (
		writers = 8
		rounds  = 200
	)
	k := h.key("k")
	base := time.Now().UnixNano()
	var current atomic.Int64 // created-at of the Set in progress or last done
	current.Store(base)
	h.set(k, stamped(base, "set"), 0)
	ctx, cancel := context.WithCancel(h.ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // also when a check below ends the test
	var stores, refusals atomic.Int64
	for g := range writers {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				// Older than the Set in progress (or just done) by a little, or by more.
				c := current.Load() - 1 - int64((g+n)%3)*500
				stored, err := cs.SetIfNotNewer(ctx, k, stamped(c, "conditional"), 0)
				switch {
				case err != nil && ctx.Err() == nil:
					h.Errorf("SetIfNotNewer(%q, created %d): %v", k, c, err)
					return
				case stored:
					stores.Add(1)
				case err == nil:
					refusals.Add(1)
				}
			}
		})
	}
	for i := 1; i <= rounds && !h.Failed(); i++ {
		c := base + int64(i)*1000
		current.Store(c)
		if err := h.b.Set(h.ctx, k, stamped(c, "set"), 0); err != nil {
			h.Errorf("Set(%q, created %d): %v", k, c, err)
			break
		}
		if got := h.created(k); got != c {
			h.Errorf("round %d: Get(%q) after Set of an entry created at %d holds one created at %d: a conditional store of an older entry overwrote the Set", i, k, c, got)
			break
		}
	}
	cancel()
	wg.Wait()
	h.Logf("%d conditional stores, %d refusals during %d Sets", stores.Load(), refusals.Load(), rounds)
}

func (h *harness) conditionalMultiSetter() backends.ConditionalMultiSetter {
	h.Helper()
	cms, ok := backends.As[backends.ConditionalMultiSetter](h.b)
	if !ok {
		h.Skip("the backend does not implement backends.ConditionalMultiSetter")
	}
	return cms
}

func testConditionalMultiSet(h *harness) {
	cms := h.conditionalMultiSetter()
	// Empty input does no I/O: even with a context already done it succeeds.
	done, cancel := context.WithCancel(h.ctx)
	cancel()
	for _, items := range []map[string][]byte{nil, {}} {
		if refused, err := cms.SetMultiIfNotNewer(done, items, 0); err != nil || len(refused) != 0 {
			h.Fatalf("SetMultiIfNotNewer(%#v) = %q, %v; want nothing refused and no error, without I/O", items, refused, err)
		}
	}

	items := map[string][]byte{}
	want := map[string][]byte{}
	var wantRefused []string
	for _, tc := range conditionalCases() {
		k := h.key(tc.name)
		if tc.held != nil {
			h.set(k, tc.held, 0)
		}
		items[k] = slices.Clone(tc.value)
		if tc.wantStored {
			want[k] = tc.value
		} else {
			want[k] = tc.held
			wantRefused = append(wantRefused, k)
		}
	}
	refused, err := cms.SetMultiIfNotNewer(h.ctx, items, 0)
	if err != nil {
		h.Fatalf("SetMultiIfNotNewer(%d items): %v", len(items), err)
	}
	slices.Sort(refused)
	slices.Sort(wantRefused)
	if !slices.Equal(refused, wantRefused) {
		h.Fatalf("SetMultiIfNotNewer refused %q; want exactly %q", refused, wantRefused)
	}
	// The backend does not retain the values.
	for _, v := range items {
		for i := range v {
			v[i] ^= 0xff
		}
	}
	for k, v := range want {
		h.wantValue(k, v)
	}
}

// testConditionalMultiSetConcurrent: goroutines store conditionally, at once, batches of entries
// of distinct created-at under shared keys; the newest must end up held under each.
func testConditionalMultiSetConcurrent(h *harness) {
	cms := h.conditionalMultiSetter()
	const goroutines, each, nKeys = 16, 20, 3
	keys := make([]string, nKeys)
	for i := range keys {
		keys[i] = h.key("k" + strconv.Itoa(i))
	}
	base := time.Now().UnixNano()
	stamps := make([]int64, goroutines*each)
	for i := range stamps {
		stamps[i] = base + int64(i)
	}
	rand.Shuffle(len(stamps), func(i, j int) { stamps[i], stamps[j] = stamps[j], stamps[i] })
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for _, c := range stamps[g*each : (g+1)*each] {
				items := make(map[string][]byte, nKeys)
				for _, k := range keys {
					items[k] = stamped(c, k)
				}
				refused, err := cms.SetMultiIfNotNewer(h.ctx, items, 0)
				if err != nil {
					h.Errorf("SetMultiIfNotNewer(created %d): %v", c, err)
					return
				}
				for _, k := range refused {
					if items[k] == nil {
						h.Errorf("SetMultiIfNotNewer(created %d) refused %q, which it was not given", c, k)
						return
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if h.Failed() {
		return
	}
	newest := base + int64(len(stamps)) - 1
	for _, k := range keys {
		h.wantValue(k, stamped(newest, k))
	}
}
