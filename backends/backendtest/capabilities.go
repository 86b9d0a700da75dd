package backendtest

import (
	"bytes"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

func testMultiGet(h *harness) {
	mg, ok := backends.As[backends.MultiGetter](h.b)
	if !ok {
		h.Skip("the backend does not implement backends.MultiGetter")
	}
	a, b, absent := h.key("a"), h.key("b"), h.key("absent")
	va, vb := entry([]byte("a")), entry([]byte("b"))
	h.set(a, va, 0)
	h.set(b, vb, 0)

	for _, keys := range [][]string{nil, {}} {
		m, err := mg.GetMulti(h.ctx, keys)
		if err != nil || len(m) != 0 {
			h.Fatalf("GetMulti(%#v) = %d entries, %v; want none and no error", keys, len(m), err)
		}
	}
	m, err := mg.GetMulti(h.ctx, []string{absent})
	if err != nil || len(m) != 0 {
		h.Fatalf("GetMulti(absent key) = %v, %v; want an empty map and no error", m, err)
	}

	keys := []string{a, absent, b, a} // a gap and a duplicate
	m, err = mg.GetMulti(h.ctx, keys)
	if err != nil {
		h.Fatalf("GetMulti(%q): %v", keys, err)
	}
	if len(m) != 2 || !bytes.Equal(m[a], va) || !bytes.Equal(m[b], vb) {
		h.Fatalf("GetMulti(%q) = %d entries (a: %s, b: %s); want exactly a and b", keys, len(m), describe(m[a]), describe(m[b]))
	}
	if _, found := m[absent]; found {
		h.Fatalf("GetMulti(%q) has an entry for the absent key %q", keys, absent)
	}

	// The returned slices are the caller's.
	for i := range m[a] {
		m[a][i] ^= 0xff
	}
	h.wantValue(a, va)
}

func testMultiSet(h *harness) {
	ms, ok := backends.As[backends.MultiSetter](h.b)
	if !ok {
		h.Skip("the backend does not implement backends.MultiSetter")
	}
	for _, items := range []map[string][]byte{nil, {}} {
		if err := ms.SetMulti(h.ctx, items, 0); err != nil {
			h.Fatalf("SetMulti(%#v): %v", items, err)
		}
	}
	a, b, c := h.key("a"), h.key("b"), h.key("c")
	h.set(a, entry([]byte("old a")), 0)
	va, vb, vc := entry([]byte("a")), entry([]byte("b")), entry(nil)
	want := map[string][]byte{a: bytes.Clone(va), b: bytes.Clone(vb), c: bytes.Clone(vc)}
	if err := ms.SetMulti(h.ctx, map[string][]byte{a: va, b: vb, c: vc}, 0); err != nil {
		h.Fatalf("SetMulti: %v", err)
	}
	// The backend must not retain the values.
	for _, v := range [][]byte{va, vb, vc} {
		for i := range v {
			v[i] ^= 0xff
		}
	}
	for k, v := range want {
		h.wantValue(k, v)
	}
}

func testMultiDelete(h *harness) {
	md, ok := backends.As[backends.MultiDeleter](h.b)
	if !ok {
		h.Skip("the backend does not implement backends.MultiDeleter")
	}
	for _, keys := range [][]string{nil, {}} {
		if err := md.DeleteMulti(h.ctx, keys); err != nil {
			h.Fatalf("DeleteMulti(%#v): %v", keys, err)
		}
	}
	a, b, kept, absent := h.key("a"), h.key("b"), h.key("kept"), h.key("absent")
	keptValue := entry([]byte("kept"))
	h.set(a, entry([]byte("a")), 0)
	h.set(b, entry([]byte("b")), 0)
	h.set(kept, keptValue, 0)
	keys := []string{a, absent, b, a} // an absent key and a duplicate
	if err := md.DeleteMulti(h.ctx, keys); err != nil {
		h.Fatalf("DeleteMulti(%q): %v", keys, err)
	}
	h.wantMiss(a)
	h.wantMiss(b)
	h.wantValue(kept, keptValue)
}

// locker returns the backend's Locker or skips the subtest.
func (h *harness) locker() backends.Locker {
	h.Helper()
	l, ok := backends.As[backends.Locker](h.b)
	if !ok {
		h.Skip("the backend does not implement backends.Locker")
	}
	return l
}

// tryLock calls TryLock and fails on an error or on a result that breaks the contract.
func (h *harness) tryLock(l backends.Locker, key string, timeout time.Duration) (backends.Lock, bool) {
	h.Helper()
	lock, ok, err := l.TryLock(h.ctx, key, timeout)
	if err != nil {
		h.Fatalf("TryLock(%q, %v): %v", key, timeout, err)
	}
	if ok && lock == nil {
		h.Fatalf("TryLock(%q, %v) = nil, true; want a Lock when taken", key, timeout)
	}
	if !ok && lock != nil {
		h.Fatalf("TryLock(%q, %v) = %v, false; want a nil Lock when not taken", key, timeout, lock)
	}
	return lock, ok
}

func (h *harness) mustLock(l backends.Locker, key string, timeout time.Duration) backends.Lock {
	h.Helper()
	lock, ok := h.tryLock(l, key, timeout)
	if !ok {
		h.Fatalf("TryLock(%q, %v) on a free lock: not taken", key, timeout)
	}
	return lock
}

func (h *harness) wantLocked(l backends.Locker, key, why string) {
	h.Helper()
	if lock, ok := h.tryLock(l, key, longLock); ok {
		_ = lock.Unlock(h.ctx)
		h.Fatalf("TryLock(%q) succeeded %s", key, why)
	}
}

func (h *harness) unlock(lock backends.Lock, key string) {
	h.Helper()
	if err := lock.Unlock(h.ctx); err != nil {
		h.Fatalf("Unlock(%q): %v", key, err)
	}
}

func testLockExclusive(h *harness) {
	l := h.locker()
	k, other := h.lockKey("k"), h.lockKey("other")
	first := h.mustLock(l, k, longLock)
	h.wantLocked(l, k, "while another holder has the lock")

	otherLock := h.mustLock(l, other, longLock) // locks on other keys are independent
	h.unlock(otherLock, other)

	h.unlock(first, k)
	again := h.mustLock(l, k, longLock)
	h.unlock(again, k)
}

func testLockContended(h *harness) {
	l := h.locker()
	k := h.lockKey("k")
	const contenders = 16
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		winners atomic.Int32
		mu      sync.Mutex
		held    []backends.Lock
	)
	for range contenders {
		wg.Go(func() {
			<-start
			lock, ok, err := l.TryLock(h.ctx, k, longLock)
			if err != nil {
				h.Errorf("TryLock(%q): %v", k, err)
				return
			}
			if ok {
				winners.Add(1)
				mu.Lock()
				held = append(held, lock)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	for _, lock := range held {
		h.unlock(lock, k)
	}
	if n := winners.Load(); n != 1 {
		h.Fatalf("%d goroutines calling TryLock(%q) at once: %d took the lock, want 1", contenders, k, n)
	}
	h.unlock(h.mustLock(l, k, longLock), k)
}

func testLockTimeout(h *harness) {
	l := h.locker()
	k := h.lockKey("k")
	h.mustLock(l, k, shortLock) // never unlocked: it must free itself
	h.wantLocked(l, k, "right after another holder took it with timeout "+shortLock.String())
	var next backends.Lock
	h.poll("the lock taken with timeout "+shortLock.String()+" frees itself", func() bool {
		lock, ok := h.tryLock(l, k, longLock)
		next = lock
		return ok
	})
	h.unlock(next, k)
}

func testLockUnlockByStaleHolder(h *harness) {
	l := h.locker()
	k := h.lockKey("k")
	stale := h.mustLock(l, k, shortLock)
	var current backends.Lock
	h.poll("the lock taken with timeout "+shortLock.String()+" frees itself", func() bool {
		lock, ok := h.tryLock(l, k, longLock)
		current = lock
		return ok
	})
	// The first holder's lock expired and another took it: the first holder's Unlock is not an
	// error and must not release the current holder's lock, however often it is called.
	for range 2 {
		if err := stale.Unlock(h.ctx); err != nil {
			h.Fatalf("Unlock(%q) by a holder whose lock expired: %v; want nil", k, err)
		}
		h.wantLocked(l, k, "after a stale holder's Unlock: it released the current holder's lock")
	}
	h.unlock(current, k)
	h.unlock(h.mustLock(l, k, longLock), k)
}

func testLockMulti(h *harness) {
	l := h.locker()
	ml, ok := backends.As[backends.MultiLocker](h.b)
	if !ok {
		h.Skip("the backend does not implement backends.MultiLocker")
	}
	for _, keys := range [][]string{nil, {}} {
		taken, release, err := ml.TryLockMulti(h.ctx, keys, longLock)
		if err != nil || len(taken) != 0 || release == nil {
			h.Fatalf("TryLockMulti(%#v) = %v, %v, %v; want nothing taken, a release and no error", keys, taken, release, err)
		}
		if err := release.Unlock(h.ctx); err != nil {
			h.Fatalf("releasing an empty TryLockMulti: %v", err)
		}
	}
	a, held, b := h.lockKey("a"), h.lockKey("held"), h.lockKey("b")
	other := h.mustLock(l, held, longLock)
	keys := []string{a, held, b}
	taken, release, err := ml.TryLockMulti(h.ctx, keys, longLock)
	if err != nil {
		h.Fatalf("TryLockMulti(%q): %v", keys, err)
	}
	if len(taken) != 3 || !taken[0] || taken[1] || !taken[2] || release == nil {
		h.Fatalf("TryLockMulti(%q) with the second held by TryLock = %v (release %v); want [true false true] and a release", keys, taken, release)
	}
	// The same locks as TryLock's, both ways.
	h.wantLocked(l, a, "while TryLockMulti holds the lock")
	h.wantLocked(l, b, "while TryLockMulti holds the lock")
	if again, release2, err := ml.TryLockMulti(h.ctx, []string{a}, longLock); err != nil || len(again) != 1 || again[0] {
		h.Fatalf("TryLockMulti of a lock TryLockMulti holds = %v, %v; want [false]", again, err)
	} else {
		_ = release2.Unlock(h.ctx)
	}
	if err := release.Unlock(h.ctx); err != nil {
		h.Fatalf("releasing TryLockMulti(%q): %v", keys, err)
	}
	h.wantLocked(l, held, "after a TryLockMulti that did not take it was released")
	h.unlock(h.mustLock(l, a, longLock), a)
	h.unlock(h.mustLock(l, b, longLock), b)
	h.unlock(other, held)

	// Locks taken together free themselves after the timeout, and a stale release leaves the
	// next holder's lock alone.
	taken, stale, err := ml.TryLockMulti(h.ctx, []string{a, b}, shortLock)
	if err != nil || len(taken) != 2 || !taken[0] || !taken[1] {
		h.Fatalf("TryLockMulti(%q, %v) on free locks = %v, %v", []string{a, b}, shortLock, taken, err)
	}
	var current backends.Lock
	h.poll("the locks taken with timeout "+shortLock.String()+" free themselves", func() bool {
		lock, ok := h.tryLock(l, a, longLock)
		current = lock
		return ok
	})
	if err := stale.Unlock(h.ctx); err != nil {
		h.Fatalf("a stale TryLockMulti release: %v; want nil", err)
	}
	h.wantLocked(l, a, "after a stale TryLockMulti release: it released the current holder's lock")
	h.unlock(current, a)
}

// testItem is a value as a region would store it: a pointer to a struct.
type testItem struct {
	Name string
	IDs  []int
}

func testValueRoundTrip(h *harness) {
	vs, ok := backends.As[backends.ValueStore](h.b)
	if !ok {
		h.Skip("the backend does not implement backends.ValueStore")
	}
	if !vs.StoresValues() {
		h.Skip("the backend's StoresValues reports false")
	}
	k := h.key("k")
	if item, err := vs.GetValue(h.ctx, k); !errors.Is(err, backends.ErrNotFound) {
		h.Fatalf("GetValue(%q) on a missing key = %+v, %v; want an error wrapping backends.ErrNotFound", k, item, err)
	}

	first := backends.Item{Value: &testItem{Name: "gopher", IDs: []int{1, 2}}, Created: 1700000000000000001}
	second := backends.Item{Value: "a string", Created: -1}
	for _, want := range []backends.Item{first, second} {
		if err := vs.SetValue(h.ctx, k, want, 0); err != nil {
			h.Fatalf("SetValue(%q, %+v): %v", k, want, err)
		}
		got, err := vs.GetValue(h.ctx, k)
		if err != nil {
			h.Fatalf("GetValue(%q): %v", k, err)
		}
		if !reflect.DeepEqual(got, want) {
			h.Fatalf("GetValue(%q) = %+v; want %+v", k, got, want)
		}
	}

	h.del(k)
	if item, err := vs.GetValue(h.ctx, k); !errors.Is(err, backends.ErrNotFound) {
		h.Fatalf("GetValue(%q) after Delete = %+v, %v; want an error wrapping backends.ErrNotFound", k, item, err)
	}
}
