package backendtest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/backendtest"
)

// mapBackend is a reference backend with every capability, used to check the suite itself. bug
// names a contract violation it commits on purpose (see bugs), or is empty.
type mapBackend struct {
	bug string

	mu     sync.Mutex // guards everything below
	data   map[string]record
	locks  map[string]lockRecord
	tokens uint64
	closed bool
}

type record struct {
	value   []byte
	item    backends.Item
	isValue bool
	expires time.Time // zero: never
}

type lockRecord struct {
	token   uint64
	expires time.Time
}

func newMapBackend(bug string) *mapBackend {
	return &mapBackend{bug: bug, data: map[string]record{}, locks: map[string]lockRecord{}}
}

var (
	_ backends.MultiGetter  = (*mapBackend)(nil)
	_ backends.MultiSetter  = (*mapBackend)(nil)
	_ backends.MultiDeleter = (*mapBackend)(nil)
	_ backends.Locker       = (*mapBackend)(nil)
	_ backends.ValueStore   = (*mapBackend)(nil)
)

func (b *mapBackend) expiry(ttl time.Duration) time.Time {
	if ttl <= 0 || b.bug == "ignores-ttl" {
		return time.Time{}
	}
	return time.Now().Add(ttl)
}

func (b *mapBackend) live(key string) (record, bool) {
	r, ok := b.data[key]
	if ok && !r.expires.IsZero() && !time.Now().Before(r.expires) {
		delete(b.data, key)
		return record{}, false
	}
	return r, ok
}

func (b *mapBackend) Get(_ context.Context, key string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.live(key)
	if !ok || r.isValue {
		if b.bug == "nil-nil-miss" {
			return nil, nil
		}
		return nil, fmt.Errorf("map: get %q: %w", key, backends.ErrNotFound)
	}
	if b.bug == "shares-get" {
		return r.value, nil
	}
	return append([]byte{}, r.value...), nil
}

func (b *mapBackend) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bug != "retains-set" {
		value = append([]byte{}, value...)
	}
	b.data[key] = record{value: value, expires: b.expiry(ttl)}
	return nil
}

func (b *mapBackend) Delete(_ context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.live(key); !ok && b.bug == "delete-absent-fails" {
		return fmt.Errorf("map: delete %q: no such key", key)
	}
	delete(b.data, key)
	return nil
}

func (b *mapBackend) GetMulti(ctx context.Context, keys []string) (map[string][]byte, error) {
	m := make(map[string][]byte, len(keys))
	for _, k := range keys {
		v, err := b.Get(ctx, k)
		if err == nil && (v != nil || b.bug != "nil-nil-miss") {
			m[k] = v
		}
	}
	return m, nil
}

func (b *mapBackend) SetMulti(ctx context.Context, items map[string][]byte, ttl time.Duration) error {
	for k, v := range items {
		if err := b.Set(ctx, k, v, ttl); err != nil {
			return err
		}
	}
	return nil
}

func (b *mapBackend) DeleteMulti(ctx context.Context, keys []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		delete(b.data, k)
	}
	return nil
}

func (b *mapBackend) StoresValues() bool { return true }

func (b *mapBackend) GetValue(_ context.Context, key string) (backends.Item, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.live(key)
	if !ok || !r.isValue {
		return backends.Item{}, backends.ErrNotFound
	}
	return r.item, nil
}

func (b *mapBackend) SetValue(_ context.Context, key string, item backends.Item, ttl time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.data[key] = record{item: item, isValue: true, expires: b.expiry(ttl)}
	return nil
}

func (b *mapBackend) TryLock(_ context.Context, key string, timeout time.Duration) (backends.Lock, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, held := b.locks[key]; held && (time.Now().Before(l.expires) || b.bug == "lock-never-expires") {
		return nil, false, nil
	}
	b.tokens++
	b.locks[key] = lockRecord{token: b.tokens, expires: time.Now().Add(timeout)}
	return &mapLock{b: b, key: key, token: b.tokens}, true, nil
}

type mapLock struct {
	b     *mapBackend
	key   string
	token uint64
}

func (l *mapLock) Unlock(context.Context) error {
	l.b.mu.Lock()
	defer l.b.mu.Unlock()
	if cur, ok := l.b.locks[l.key]; ok && (cur.token == l.token || l.b.bug == "unlock-releases-any") {
		delete(l.b.locks, l.key)
	}
	return nil
}

func (b *mapBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("map: closed twice")
	}
	b.closed = true
	return nil
}

// wrapper hides its backend's capabilities except through Unwrap, as a logging wrapper would.
type wrapper struct{ backends.Backend }

func (w wrapper) Unwrap() backends.Backend { return w.Backend }

func TestRun(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return newMapBackend("")
	})
}

func TestRunFindsCapabilitiesBehindWrappers(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return wrapper{newMapBackend("")}
	})
}

// bugs maps each contract violation of mapBackend to the subtest that must catch it and the words
// its failure must contain.
var bugs = map[string]struct{ subtest, says string }{
	"nil-nil-miss":        {"Miss", "a miss is never nil, nil"},
	"shares-get":          {"GetReturnsCallersSlice", `Get("`},
	"retains-set":         {"SetDoesNotRetainValue", `Get("`},
	"delete-absent-fails": {"DeleteAbsent", "no such key"},
	"ignores-ttl":         {"TTL", "are gone: still not the case after 5s"},
	"lock-never-expires":  {"LockTimeout", "frees itself: still not the case"},
	"unlock-releases-any": {"LockUnlockByStaleHolder", "after a stale holder's Unlock"},
}

// TestBuggyBackend runs the suite on a backend with the bug named by $BACKENDTEST_BUG; it is
// run only as a subprocess of TestRunCatchesBugs, and is expected to fail.
func TestBuggyBackend(t *testing.T) {
	bug := os.Getenv("BACKENDTEST_BUG")
	if bug == "" {
		t.Skip("run by TestRunCatchesBugs")
	}
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return newMapBackend(bug)
	})
}

// TestRunCatchesBugs checks that the suite fails a backend that breaks the contract, by running
// it in a subprocess (the failure of a *testing.T cannot be observed from inside the process).
func TestRunCatchesBugs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite once per bug")
	}
	for bug, want := range bugs {
		t.Run(bug, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBuggyBackend$/^"+want.subtest+"$", "-test.v")
			cmd.Env = append(os.Environ(), "BACKENDTEST_BUG="+bug)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a backend with bug %q; output:\n%s", bug, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestBuggyBackend/"+want.subtest) || !strings.Contains(string(out), want.says) {
				t.Fatalf("want subtest %s to fail saying %q; output:\n%s", want.subtest, want.says, out)
			}
		})
	}
}
