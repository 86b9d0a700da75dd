package backends

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite the golden files in ../testdata from the current encoder")

// goldenEntries pins the stored entry format. Each file in ../testdata holds the raw bytes (not
// hex) that EncodeEntry writes for the entry beside it; view one with `xxd testdata/entry-v1.golden`.
// The files are what other processes, other versions of this library and other languages read:
// a test failure here means the format changed, and needs a new EntryVersion, not -update.
// Run `go test ./backends -run TestEntryGolden -update` only to add a file.
var goldenEntries = []struct {
	file  string
	v1    bool // written by earlier releases: still decoded, no longer encoded
	entry Entry
}{
	{
		file: "entry-v1.golden",
		v1:   true,
		entry: Entry{
			Created: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano(),
			Payload: []byte(`{"name":"gopher"}`),
		},
	},
	{
		file:  "entry-v1-empty.golden",
		v1:    true,
		entry: Entry{Created: 1},
	},
	{
		file: "entry-v1-flags.golden",
		v1:   true,
		entry: Entry{
			Created: -1,
			Flags:   0xa5,
			Payload: []byte{0x00, 0xff, 'd', 'p'},
		},
	},
	{
		file: "entry-v2.golden",
		entry: Entry{
			Created: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano(),
			Delta:   int64(1500 * time.Millisecond),
			Payload: []byte(`{"name":"gopher"}`),
		},
	},
	{
		file:  "entry-v2-empty.golden",
		entry: Entry{Created: 1},
	},
	{
		file:  "entry-v2-negative.golden",
		entry: Entry{Created: 2, Delta: 3, Flags: FlagNegative},
	},
	{
		file: "entry-v2-flags.golden",
		entry: Entry{
			Created: -1,
			Delta:   -1,
			Flags:   0xa5,
			Payload: []byte{0x00, 0xff, 'd', 'p'},
		},
	},
}

// encodeEntryV1 is the encoder of version 1, which earlier releases wrote.
func encodeEntryV1(e Entry) []byte {
	dst := make([]byte, 0, entryHeaderSizeV1+len(e.Payload))
	dst = append(dst, entryMagic0, entryMagic1, 1, e.Flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Created))
	return append(dst, e.Payload...)
}

func TestEntryGolden(t *testing.T) {
	for _, tc := range goldenEntries {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("..", "testdata", tc.file)
			encode := EncodeEntry
			if tc.v1 {
				encode = encodeEntryV1
			}
			got := encode(tc.entry)
			if *update && !tc.v1 {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoding %+v =\n%swant (%s)\n%s", tc.entry, hex.Dump(got), path, hex.Dump(want))
			}
			dec, err := DecodeEntry(want)
			if err != nil {
				t.Fatalf("DecodeEntry(%s): %v", path, err)
			}
			if diff := cmp.Diff(tc.entry, dec, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("DecodeEntry(%s) mismatch (-want +got):\n%s", path, diff)
			}
		})
	}
}

func TestEntryHeaderLayout(t *testing.T) {
	b := EncodeEntry(Entry{Created: 0x0102030405060708, Delta: 0x1112131415161718, Flags: 0x80, Payload: []byte("x")})
	want := []byte{'d', 'p', 2, 0x80, 1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 'x'}
	if !bytes.Equal(b, want) {
		t.Fatalf("EncodeEntry = % x, want % x", b, want)
	}
	if len(b) != EntryHeaderSize+1 || cap(b) != len(b) {
		t.Errorf("len, cap = %d, %d; want %d, %d", len(b), cap(b), EntryHeaderSize+1, EntryHeaderSize+1)
	}
}

func TestAppendEntry(t *testing.T) {
	e := Entry{Created: 42, Payload: []byte("payload")}
	prefix := []byte("prefix")
	got := AppendEntry(prefix, e)
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendEntry lost the prefix: %q", got)
	}
	if want := EncodeEntry(e); !bytes.Equal(got[len(prefix):], want) {
		t.Errorf("AppendEntry appended % x, want % x", got[len(prefix):], want)
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = AppendEntry(buf[:0], e) }); n != 0 {
		t.Errorf("AppendEntry with room allocates %v times, want 0", n)
	}
}

func TestDecodeEntryAliases(t *testing.T) {
	b := EncodeEntry(Entry{Created: 7, Payload: []byte("abc")})
	e, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if cap(e.Payload) != len(e.Payload) {
		t.Errorf("cap(Payload) = %d, want %d: appending to it must not write into b's spare room", cap(e.Payload), len(e.Payload))
	}
	b[EntryHeaderSize] = 'X'
	if string(e.Payload) != "Xbc" {
		t.Errorf("Payload = %q after changing b; want it to alias b", e.Payload)
	}
	if n := testing.AllocsPerRun(100, func() { e, err = DecodeEntry(b) }); n != 0 {
		t.Errorf("DecodeEntry allocates %v times, want 0", n)
	}
}

func TestDecodeEntryMalformed(t *testing.T) {
	valid := EncodeEntry(Entry{Created: 1, Payload: []byte("v")})
	withByte := func(i int, v byte) []byte {
		b := bytes.Clone(valid)
		b[i] = v
		return b
	}
	tests := []struct {
		name   string
		in     []byte
		reason string
	}{
		{"nil", nil, "0 bytes"},
		{"empty", []byte{}, "0 bytes"},
		{"magic only", []byte("dp"), "2 bytes"},
		{"one short", valid[:EntryHeaderSize-1], "19 bytes"},
		{"one short of version 1", encodeEntryV1(Entry{})[:11], "11 bytes"},
		{"json", []byte(`{"name":"gopher"}`), "magic"},
		{"bad first magic", withByte(0, 'D'), "magic"},
		{"bad second magic", withByte(1, 'q'), "magic"},
		{"version 0", withByte(2, 0), "version 0"},
		{"version 3", withByte(2, 3), "version 3"},
		{"version 255", withByte(2, 255), "version 255"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := DecodeEntry(tc.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeEntry(% x) = %+v, %v; want an error wrapping ErrMalformed", tc.in, e, err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", err, tc.reason)
			}
			if diff := cmp.Diff(Entry{}, e); diff != "" {
				t.Errorf("DecodeEntry returned a non-zero entry with its error:\n%s", diff)
			}
		})
	}
}

func TestDecodeEntryKeepsUnknownFlags(t *testing.T) {
	for _, flags := range []uint8{0, 1, 0x80, 0xff} {
		b := EncodeEntry(Entry{Flags: flags})
		e, err := DecodeEntry(b)
		if err != nil {
			t.Fatalf("flags %#x: %v", flags, err)
		}
		if e.Flags != flags {
			t.Errorf("Flags = %#x, want %#x", e.Flags, flags)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	for _, g := range goldenEntries {
		f.Add(EncodeEntry(g.entry), g.entry.Created, g.entry.Flags)
		f.Add(encodeEntryV1(g.entry), g.entry.Created, g.entry.Flags)
	}
	f.Add([]byte{}, int64(0), uint8(0))
	f.Add([]byte("dp"), int64(-1), uint8(1))
	f.Add([]byte("dp\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00"), int64(1<<62), uint8(0xff))
	f.Fuzz(func(t *testing.T, data []byte, created int64, flags uint8) {
		// Any input: no panic, at most a short error's allocation (never one that grows with
		// data), and either ErrMalformed or an entry that re-encodes to data. The bound is a
		// constant with room for the error's message and for what the runtime counts besides
		// (under -race, with other tests running, the least of three reads of TotalAlloc saw
		// 336 bytes for a 12-byte input).
		if n := decodeEntryAlloc(data); n > 1024 {
			t.Fatalf("DecodeEntry of %d bytes allocated %d bytes, want at most 1024", len(data), n)
		}
		e, err := DecodeEntry(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeEntry error %v does not wrap ErrMalformed", err)
			}
		} else if re := EncodeEntry(e); data[2] == 1 {
			if re := encodeEntryV1(e); !bytes.Equal(re, data) {
				t.Fatalf("DecodeEntry then the version 1 encoder changed the bytes:\n%s\nbecame\n%s", hex.Dump(data), hex.Dump(re))
			}
		} else if !bytes.Equal(re, data) {
			t.Fatalf("DecodeEntry then EncodeEntry changed the bytes:\n%s\nbecame\n%s", hex.Dump(data), hex.Dump(re))
		}

		// Any entry: decode(encode(e)) == e, with data as the payload.
		in := Entry{Created: created, Delta: created / 3, Flags: flags, Payload: data}
		out, err := DecodeEntry(EncodeEntry(in))
		if err != nil {
			t.Fatalf("DecodeEntry(EncodeEntry(%+v)): %v", in, err)
		}
		if diff := cmp.Diff(in, out, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip mismatch (-in +out):\n%s", diff)
		}
	})
}

// decodeEntryAlloc returns the bytes DecodeEntry(data) allocates: the least of three runs, so
// that an allocation of the fuzzing engine's in the same moment is not counted.
func decodeEntryAlloc(data []byte) uint64 {
	best := uint64(math.MaxUint64)
	var before, after runtime.MemStats
	for range 5 {
		runtime.ReadMemStats(&before)
		_, _ = DecodeEntry(data)
		runtime.ReadMemStats(&after)
		best = min(best, after.TotalAlloc-before.TotalAlloc)
	}
	return best
}
