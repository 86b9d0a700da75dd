package keys

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"testing"
)

func TestSHA1(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
		{"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
		{"The quick brown fox jumps over the lazy dog", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"},
		{strings.Repeat("a", 1_000_000), "34aa973cd4c4daa4f61eeb2bdbad27316534016f"},
	}
	for _, tt := range tests {
		if got := SHA1(tt.in); got != tt.want {
			t.Errorf("SHA1 of %d bytes = %q, want %q", len(tt.in), got, tt.want)
		}
	}
}

func TestPrefix(t *testing.T) {
	tests := []struct{ p, in, want string }{
		{"app:", "k", "app:k"},
		{"", "k", "k"},
		{"app:", "", "app:"},
	}
	for _, tt := range tests {
		if got := Prefix(tt.p)(tt.in); got != tt.want {
			t.Errorf("Prefix(%q)(%q) = %q, want %q", tt.p, tt.in, got, tt.want)
		}
	}
}

func TestLengthConditional(t *testing.T) {
	mark := func(k string) string { return "M(" + k + ")" }
	tests := []struct {
		max      int
		in, want string
	}{
		{3, "ab", "ab"},
		{3, "abc", "abc"},      // len == max: unchanged
		{3, "abcd", "M(abcd)"}, // len == max+1: mangled
		{0, "", ""},            // empty key, max 0: unchanged
		{0, "a", "M(a)"},
		{-1, "", "M()"}, // negative max mangles everything
		{250, strings.Repeat("x", 250), strings.Repeat("x", 250)},
		{250, strings.Repeat("x", 251), "M(" + strings.Repeat("x", 251) + ")"},
	}
	for _, tt := range tests {
		if got := LengthConditional(tt.max, mark)(tt.in); got != tt.want {
			t.Errorf("LengthConditional(%d)(%q) = %q, want %q", tt.max, tt.in, got, tt.want)
		}
	}
	if got := LengthConditional(40, SHA1)(strings.Repeat("k", 41)); len(got) != 40 {
		t.Errorf("LengthConditional(40, SHA1) of 41 bytes = %q, want a 40-byte digest", got)
	}
}

func TestLengthConditionalNilPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("LengthConditional(1, nil) did not panic")
		}
	}()
	LengthConditional(1, nil)
}

func TestChain(t *testing.T) {
	add := func(s string) Mangler { return func(k string) string { return k + s } }
	tests := []struct {
		name string
		ms   []Mangler
		want string
	}{
		{"empty is identity", nil, "k"},
		{"only nils is identity", []Mangler{nil, nil}, "k"},
		{"one", []Mangler{add("1")}, "k1"},
		{"in order", []Mangler{add("1"), add("2"), add("3")}, "k123"},
		{"nils skipped", []Mangler{nil, add("1"), nil, add("2")}, "k12"},
		{"prefix then hash", []Mangler{Prefix("p:"), SHA1}, SHA1("p:k")},
		{"hash then prefix", []Mangler{SHA1, Prefix("p:")}, "p:" + SHA1("k")},
	}
	for _, tt := range tests {
		if got := Chain(tt.ms...)("k"); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestChainCopiesSlice(t *testing.T) {
	ms := []Mangler{Prefix("a"), Prefix("b")}
	m := Chain(ms...)
	ms[0] = Prefix("z")
	if got := m("k"); got != "bak" {
		t.Errorf("Chain after changing its argument slice: got %q, want %q", got, "bak")
	}
}

// sha1Keys are keys of many lengths and contents: empty, either side of 55 bytes (the longest
// input one padded SHA-1 block holds) and of 64 (one block), longer than 256 bytes, non-ASCII,
// invalid UTF-8 and with NUL bytes.
var sha1Keys = []string{
	"",
	"a",
	"abc",
	benchKey,
	strings.Repeat("k", 55),
	strings.Repeat("k", 56),
	strings.Repeat("k", 64),
	strings.Repeat("k", 65),
	strings.Repeat("k", 256),
	strings.Repeat("k", 257),
	strings.Repeat("0123456789", 1000),
	"users.Load|s6:Zürich",
	"日本語|s9:東京都",
	"emoji|s4:\U0001F600",
	"\xff\xfe\x00\x01|bad utf-8",
	"nul\x00inside|\x00",
}

func TestAppendSHA1MatchesSHA1(t *testing.T) {
	for _, key := range sha1Keys {
		sum := sha1.Sum([]byte(key))
		want := hex.EncodeToString(sum[:])
		if got := SHA1(key); got != want {
			t.Errorf("SHA1 of %d bytes %.20q = %q, want %q", len(key), key, got, want)
		}
		if got := string(AppendSHA1(nil, key)); got != want {
			t.Errorf("AppendSHA1(nil) of %d bytes %.20q = %q, want %q", len(key), key, got, want)
		}
	}
}

func TestAppendSHA1KeepsExistingBytes(t *testing.T) {
	for _, key := range sha1Keys {
		want := "app:" + SHA1(key)
		room := append(make([]byte, 0, 64), "app:"...)
		if got := AppendSHA1(room, key); string(got) != want || &got[0] != &room[0] {
			t.Errorf("AppendSHA1 with room after %q = %q (same array: %v), want %q in place",
				room, got, &got[0] == &room[0], want)
		}
		full := []byte("app:")[:4:4]
		if got := AppendSHA1(full, key); string(got) != want || string(full) != "app:" {
			t.Errorf("AppendSHA1 without room after %q = %q, want %q", full, got, want)
		}
	}
}

func TestAppendSHA1DoesNotAllocateWithRoom(t *testing.T) {
	buf := make([]byte, 0, 4+2*sha1.Size)
	for _, key := range sha1Keys {
		n := testing.AllocsPerRun(100, func() {
			buf = AppendSHA1(append(buf[:0], "app:"...), key)
		})
		if n != 0 {
			t.Errorf("AppendSHA1 of %d bytes into a buffer with room: %v allocations, want 0",
				len(key), n)
		}
	}
}

func TestManglerAllocs(t *testing.T) {
	short := strings.Repeat("k", 200)
	for _, key := range []string{short, strings.Repeat("k", 1000)} {
		if n := testing.AllocsPerRun(100, func() { _ = SHA1(key) }); n != 1 {
			t.Errorf("SHA1 of %d bytes: %v allocations, want 1 (the result)", len(key), n)
		}
	}
	lc := LengthConditional(250, SHA1)
	if n := testing.AllocsPerRun(100, func() { _ = lc(short) }); n != 0 {
		t.Errorf("LengthConditional below max: %v allocations, want 0", n)
	}
}

// benchKey is the key memo makes for a function of one int64 with its default namespace.
const benchKey = "github.com/acme/svc.loadUser" + string(Sep) + "i64:42"

// BenchmarkSHA1 measures SHA1 of benchKey (35 bytes): 1 alloc (the result), ~150 ns (AMD EPYC,
// SHA-NI).
func BenchmarkSHA1(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = SHA1(benchKey)
	}
}

// BenchmarkSHA1Long measures SHA1 of a 300-byte key: 1 alloc (the result), ~310 ns.
func BenchmarkSHA1Long(b *testing.B) {
	b.ReportAllocs()
	key := strings.Repeat("k", 300)
	for b.Loop() {
		_ = SHA1(key)
	}
}

// BenchmarkAppendSHA1 measures AppendSHA1 of benchKey into a reused buffer: 0 allocs, ~110 ns.
func BenchmarkAppendSHA1(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 2*sha1.Size)
	for b.Loop() {
		buf = AppendSHA1(buf[:0], benchKey)
	}
}
