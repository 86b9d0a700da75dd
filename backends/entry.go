package backends

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// EntryVersion is the format version that EncodeEntry writes. DecodeEntry reads it and every
// earlier version. A change to the layout below gets a new version and a new golden file in
// testdata/.
const EntryVersion = 2

// EntryHeaderSize is the size in bytes of the header that precedes the payload of an entry of
// version 2, the one EncodeEntry writes:
//
//	bytes 0-1    magic 'd', 'p' (0x64, 0x70)
//	byte  2      format version (EntryVersion)
//	byte  3      flags (FlagNegative, FlagDeleted, FlagSigned; unknown bits are kept, not
//	             rejected)
//	bytes 4-11   created-at, Unix nanoseconds, big-endian int64
//	bytes 12-19  delta: how long the creation took, nanoseconds, big-endian int64 (0: unknown)
//	bytes 20-    payload: the codec's bytes, unchanged
//
// Version 1, written by earlier releases, has no delta: its payload starts at byte 12, and it
// decodes with Delta 0. A release that reads only version 1 takes version 2 entries for
// malformed ones, that is for misses (each reported as malformed): during a rolling upgrade its processes create again what
// the new ones stored, and the other way round nothing is lost.
const EntryHeaderSize = 20

// entryHeaderSizeV1 is the header size of version 1 entries.
const entryHeaderSizeV1 = 12

// FlagNegative marks an entry that caches the absence of a value ("not found") rather than a
// value: its payload is empty. Regions write it for negative caching.
const FlagNegative uint8 = 1 << 0

// FlagDeleted marks a tombstone: the key was deleted at the entry's created-at. Its payload is
// empty, and regions read it as absent. Regions write one in place of a Delete on backends that
// store conditionally (ConditionalSetter), and keep it as long as a creation may run, so that a
// creation that began before the deletion, in any process, cannot store over it.
const FlagDeleted uint8 = 1 << 1

// FlagSigned marks an entry whose payload ends with a signature trailer (see SplitSigned):
// regions that sign their entries (region.WithSignedEntries) write it, and verify it on every read
// before the payload reaches a decoder.
const FlagSigned uint8 = 1 << 2

// SignatureSize is the size of the signature at the end of a signed entry: an HMAC-SHA256.
const SignatureSize = 32

// SplitSigned splits the payload of a signed entry (FlagSigned) into the codec's bytes, the id of
// the key that signed it, and the signature. The trailer is, after the codec's bytes: the key id
// (1 to 255 bytes), its length (one byte), and the signature (SignatureSize bytes), which covers
// everything before it in the entry, header included, and the key the entry is stored under. ok
// is false when payload is too short to hold a trailer. It does not allocate: the slices alias
// payload.
func SplitSigned(payload []byte) (data, keyID, sig []byte, ok bool) {
	if len(payload) < SignatureSize+2 {
		return nil, nil, nil, false
	}
	sig = payload[len(payload)-SignatureSize:]
	rest := payload[:len(payload)-SignatureSize]
	n := int(rest[len(rest)-1])
	rest = rest[:len(rest)-1]
	if n == 0 || n > len(rest) {
		return nil, nil, nil, false
	}
	return rest[: len(rest)-n : len(rest)-n], rest[len(rest)-n:], sig, true
}

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
	// Delta is how long the creation of the value took, in nanoseconds; 0 when unknown. Regions
	// use it for probabilistic early refresh.
	Delta int64
	// Flags holds per-entry flag bits: FlagNegative. DecodeEntry keeps the bits it does not know
	// so that re-encoding an entry does not lose them.
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
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Delta))
	return append(dst, e.Payload...)
}

// EncodeEntry returns the encoding of e in a new slice of exactly EntryHeaderSize+len(e.Payload)
// bytes: one allocation, one copy of the payload.
func EncodeEntry(e Entry) []byte {
	return AppendEntry(make([]byte, 0, EntryHeaderSize+len(e.Payload)), e)
}

// DecodeEntry parses an entry written by EncodeEntry or AppendEntry, of this format version or
// an earlier one. It neither copies nor allocates on success: the returned Payload aliases b (its
// capacity ends where b's length does), so b must not be modified while the entry is in use. An
// empty payload decodes as an empty, non-nil slice.
//
// Input that is too short, has the wrong magic or an unknown format version yields an error that
// wraps ErrMalformed with a short reason; DecodeEntry never panics, whatever b holds. Unknown flag
// bits are not an error: they are returned in Flags.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) < entryHeaderSizeV1 {
		return Entry{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(b), entryHeaderSizeV1)
	}
	if b[0] != entryMagic0 || b[1] != entryMagic1 {
		return Entry{}, fmt.Errorf("%w: bad magic %#02x %#02x", ErrMalformed, b[0], b[1])
	}
	e := Entry{Created: int64(binary.BigEndian.Uint64(b[4:12])), Flags: b[3]}
	switch b[2] {
	case EntryVersion:
		if len(b) < EntryHeaderSize {
			return Entry{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header of version %d", ErrMalformed, len(b), EntryHeaderSize, EntryVersion)
		}
		e.Delta = int64(binary.BigEndian.Uint64(b[12:20]))
		e.Payload = b[EntryHeaderSize:len(b):len(b)]
	case 1:
		e.Payload = b[entryHeaderSizeV1:len(b):len(b)]
	default:
		return Entry{}, fmt.Errorf("%w: format version %d, want %d or older", ErrMalformed, b[2], EntryVersion)
	}
	return e, nil
}

// EntryCreated returns the created-at of the entry encoded in b (of any format version
// DecodeEntry reads), and false if b is not an entry. It reads the header only and does not
// allocate: backends that store conditionally (ConditionalSetter) compare entries with it.
func EntryCreated(b []byte) (int64, bool) {
	if len(b) < entryHeaderSizeV1 || b[0] != entryMagic0 || b[1] != entryMagic1 {
		return 0, false
	}
	switch b[2] {
	case EntryVersion:
		if len(b) < EntryHeaderSize {
			return 0, false
		}
	case 1:
	default:
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[4:12])), true
}
