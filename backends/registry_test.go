package backends

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeBackend is a Backend that only exists to be returned by test Openers.
type fakeBackend struct {
	Backend
	u *url.URL
}

func TestRegisterAndOpen(t *testing.T) {
	var got *url.URL
	if err := Register("test-open", func(u *url.URL) (Backend, error) {
		got = u
		return fakeBackend{u: u}, nil
	}); err != nil {
		t.Fatal(err)
	}
	b, err := Open("test-open://host:1234/db?opt=1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(fakeBackend); !ok {
		t.Fatalf("Open returned %T", b)
	}
	if got.Host != "host:1234" || got.Path != "/db" || got.Query().Get("opt") != "1" {
		t.Errorf("the Opener got %v", got)
	}
	if !slices.Contains(Registered(), "test-open") {
		t.Errorf("Registered() = %q, want it to contain test-open", Registered())
	}
}

func TestRegisterErrors(t *testing.T) {
	open := func(*url.URL) (Backend, error) { return fakeBackend{}, nil }
	if err := Register("test-dup", open); err != nil {
		t.Fatal(err)
	}
	if err := Register("test-dup", open); !errors.Is(err, ErrDuplicateBackend) {
		t.Errorf("second Register(test-dup) = %v, want ErrDuplicateBackend", err)
	}
	for _, name := range []string{"", "Upper", "1st", "has space", "a/b", "a:b", "ü"} {
		if err := Register(name, open); err == nil || !strings.Contains(err.Error(), "URL scheme") {
			t.Errorf("Register(%q) = %v, want an invalid-name error", name, err)
		}
	}
	if err := Register("test-nil", nil); err == nil || !strings.Contains(err.Error(), "nil Opener") {
		t.Errorf("Register(nil Opener) = %v, want an error", err)
	}
	if slices.Contains(Registered(), "test-nil") {
		t.Error("a failed Register registered the name")
	}
}

func TestOpenErrors(t *testing.T) {
	if err := Register("test-fails", func(u *url.URL) (Backend, error) {
		return nil, errors.New("test-fails: bad config")
	}); err != nil {
		t.Fatal(err)
	}
	if err := Register("test-nilbackend", func(u *url.URL) (Backend, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url    string
		is     error
		says   []string
		hidden string
	}{
		{url: "nosuch://x", is: ErrUnknownBackend, says: []string{`"nosuch"`, "registered: ", "test-fails"}},
		{url: "no-scheme", is: ErrUnknownBackend, says: []string{"no scheme"}},
		{url: "", is: ErrUnknownBackend, says: []string{"no scheme"}},
		{url: "nosuch://user:secret@host", is: ErrUnknownBackend, hidden: "secret"},
		{url: "test-fails://user:secret@host", says: []string{"bad config"}, hidden: "secret"},
		{url: "test-nilbackend://", says: []string{"nil Backend"}},
		{url: "test-fails://user:secret@host:port", says: []string{"invalid URL"}, hidden: "secret"},
	}
	for _, tc := range tests {
		b, err := Open(tc.url)
		if err == nil {
			t.Errorf("Open(%q) = %v, nil; want an error", tc.url, b)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("Open(%q) = %v; want it to wrap %v", tc.url, err, tc.is)
		}
		for _, s := range tc.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Open(%q) error %q does not say %q", tc.url, err, s)
			}
		}
		if tc.hidden != "" && strings.Contains(err.Error(), tc.hidden) {
			t.Errorf("Open(%q) error %q shows %q", tc.url, err, tc.hidden)
		}
	}
}

func TestRegisteredIsSortedCopy(t *testing.T) {
	for _, name := range []string{"test-zz", "test-aa", "test-mm"} {
		if err := Register(name, func(*url.URL) (Backend, error) { return fakeBackend{}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	names := Registered()
	if !slices.IsSorted(names) {
		t.Errorf("Registered() = %q, not sorted", names)
	}
	names[0] = "changed"
	if Registered()[0] == "changed" {
		t.Error("Registered() returned the registry's own slice")
	}
}

func TestRegistryConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := "test-conc" + string(rune('a'+i))
			if err := Register(name, func(*url.URL) (Backend, error) { return fakeBackend{}, nil }); err != nil {
				t.Error(err)
			}
			if _, err := Open(name + "://"); err != nil {
				t.Error(err)
			}
			_ = Registered()
		})
	}
	wg.Wait()
}

// TestOpenRedactsUserInformation: errors show no credentials, whether a password or a token in the
// user part alone (redis://token@host), which the standard Redacted keeps, a password parameter,
// or a password in a URL that does not parse (url.Error quotes it).
func TestOpenRedactsUserInformation(t *testing.T) {
	for _, raw := range []string{
		"nosuch://alice:s3cret@host:1/0", "nosuch://t0ken@host:1/0",
		"nosuch://host:1/0?password=s3cret", "nosuch://host:1/0?prefix=p&sentinel_password=s3cret",
		"nosuch://:s3cret", "nosuch://alice:s3cret@[::1", "nosuch://alice:s3#cret@host:1/0",
	} {
		_, err := Open(raw)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", raw)
		}
		for _, secret := range []string{"alice", "s3cret", "cret", "t0ken"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Open(%q) error shows %q: %v", raw, secret, err)
			}
		}
	}
}
