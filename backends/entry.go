package backends

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// EntryVersion is the format version that EncodeEntry writes and the only one DecodeEntry reads.
// A change to the layout below gets a new version and a new golden file in testdata/.
const EntryVersion = 1

// EntryHeaderSize is the size in bytes of the header that precedes the payload of an entry:
//
//	bytes 0-1   magic 'd', 'p' (0x64, 0x70)
//	byte  2     format version (EntryVersion)
//	byte  3     flags (none defined yet; unknown bits are kept, not rejected)
//	bytes 4-11  created-at, Unix nanoseconds, big-endian int64
//	bytes 12-   payload: the codec's bytes, unchanged
const EntryHeaderSize = 12

// The two magic bytes that open every entry.
const (
	entryMagic0 = 'd'
	entryMagic1 = 'p'
)

// Entry is the envelope that byte backends store: the region's metadata and the codec's payload.
// Backends never look inside it; regions encode it on Set and decode it on Get.
type Entry struct {
	// Created is when the value was created, in Unix nanoseconds.
	Created int64
	// Flags holds per-entry flag bits. None are defined in version 1; DecodeEntry keeps the bits
	// it does not know so that re-encoding an entry does not lose them.
	Flags uint8
	// Payload is the value encoded by the region's codec.
	Payload []byte
}

// AppendEntry appends the encoding of e to dst and returns the extended slice, as the
// strconv.Append functions do. It allocates only when dst lacks the capacity for
// EntryHeaderSize+len(e.Payload) more bytes, and then once.
func AppendEntry(dst []byte, e Entry) []byte {
	dst = slices.Grow(dst, EntryHeaderSize+len(e.Payload))
	dst = append(dst, entryMagic0, entryMagic1, EntryVersion, e.Flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Created))
	return append(dst, e.Payload...)
}

// EncodeEntry returns the encoding of e in a new slice of exactly EntryHeaderSize+len(e.Payload)
// bytes: one allocation, one copy of the payload.
func EncodeEntry(e Entry) []byte {
	return AppendEntry(make([]byte, 0, EntryHeaderSize+len(e.Payload)), e)
}

// DecodeEntry parses an entry written by EncodeEntry or AppendEntry. It neither copies nor
// allocates on success: the returned Payload aliases b (its capacity ends where b's length
// does), so b must not be modified while the entry is in use. An empty payload decodes as an empty,
// non-nil slice.
//
// Input that is too short, has the wrong magic or another format version yields an error that
// wraps ErrMalformed with a short reason; DecodeEntry never panics, whatever b holds. Unknown flag
// bits are not an error: they are returned in Flags.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) < EntryHeaderSize {
		return Entry{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(b), EntryHeaderSize)
	}
	if b[0] != entryMagic0 || b[1] != entryMagic1 {
		return Entry{}, fmt.Errorf("%w: bad magic %#02x %#02x", ErrMalformed, b[0], b[1])
	}
	if b[2] != EntryVersion {
		return Entry{}, fmt.Errorf("%w: format version %d, want %d", ErrMalformed, b[2], EntryVersion)
	}
	return Entry{
		Created: int64(binary.BigEndian.Uint64(b[4:12])),
		Flags:   b[3],
		Payload: b[EntryHeaderSize:len(b):len(b)],
	}, nil
}
