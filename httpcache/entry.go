package httpcache

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// entry is what the cache stores under one key: a response (status, the headers to replay, the
// body, when it was stored and how long it stays fresh), a pointer to the variants of a URL
// whose responses vary (meta: the Vary header names and the tags that select the variant key),
// or a hit-for-pass marker (pass: the URL's last response could not be stored, so requests go
// straight to the handler for a while instead of queueing behind one another).
//
// It encodes itself in a compact binary form (MarshalBinary) that the region's codec carries:
// Gob stores those bytes as they are, JSON as one base64 string. On the memory backend the
// region keeps the *entry itself and nothing is encoded.
type entry struct {
	kind   entryKind
	status int
	stored time.Time     // when the response was stored: Age counts from it
	ttl    time.Duration // how long it stays fresh after stored
	id     uint64        // of a meta entry: part of every variant key under it
	vary   []string      // of a meta entry: canonical header names, in the response's order
	tags   []string      // of a meta entry: the response's tags
	header http.Header   // hop-by-hop fields dropped; ETag and Date always set
	body   []byte

	// noStore is set by a creation that made the entry for another key than the one it runs
	// for (the handler changed its Vary or tags); it is never encoded.
	noStore bool
}

type entryKind byte

const (
	kindResponse entryKind = iota + 1
	kindMeta
	kindPass
)

// entryMagic starts every encoded entry; its last byte is the format version.
var entryMagic = [4]byte{'h', 'c', 'e', 1}

// errMalformed is the error of bytes that are not an entry of this format.
var errMalformed = errors.New("httpcache: malformed entry")

// MarshalBinary encodes e: magic, kind, status, stored (Unix ns), ttl (ns), id, then the vary
// names, the tags, the header fields and the body, each length-prefixed (uvarints). It costs one
// allocation of the encoded size.
func (e *entry) MarshalBinary() ([]byte, error) {
	n := len(entryMagic) + 1 + 2 + 8 + 8 + 8 + 4*binary.MaxVarintLen64 + len(e.body)
	for _, s := range e.vary {
		n += binary.MaxVarintLen64 + len(s)
	}
	for _, s := range e.tags {
		n += binary.MaxVarintLen64 + len(s)
	}
	for k, vs := range e.header {
		n += 2*binary.MaxVarintLen64 + len(k)
		for _, v := range vs {
			n += binary.MaxVarintLen64 + len(v)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, entryMagic[:]...)
	b = append(b, byte(e.kind))
	b = binary.BigEndian.AppendUint16(b, uint16(e.status))
	b = binary.BigEndian.AppendUint64(b, uint64(e.stored.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.ttl))
	b = binary.BigEndian.AppendUint64(b, e.id)
	b = appendStrings(b, e.vary)
	b = appendStrings(b, e.tags)
	b = binary.AppendUvarint(b, uint64(len(e.header)))
	for k, vs := range e.header {
		b = appendString(b, k)
		b = appendStrings(b, vs)
	}
	b = binary.AppendUvarint(b, uint64(len(e.body)))
	b = append(b, e.body...)
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// UnmarshalBinary decodes what MarshalBinary made. The bytes may come from any writer to the
// backend: every count and length is checked against the bytes that remain before anything is
// allocated for it, so a hostile entry makes it allocate at most a small multiple of len(data);
// bad bytes are an error that wraps errMalformed, never a panic.
func (e *entry) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	var magic [4]byte
	copy(magic[:], d.take(4))
	kind := d.byte()
	status := int(binary.BigEndian.Uint16(d.take(2)))
	stored := int64(binary.BigEndian.Uint64(d.take(8)))
	ttl := time.Duration(binary.BigEndian.Uint64(d.take(8)))
	id := binary.BigEndian.Uint64(d.take(8))
	if d.err != nil || magic != entryMagic || kind < byte(kindResponse) || kind > byte(kindPass) {
		return errMalformed
	}
	vary := d.strings()
	tags := d.strings()
	nh := d.count(2) // a field is at least two bytes: its name's and its count's lengths
	var header http.Header
	if nh > 0 {
		header = make(http.Header, nh)
	}
	for range nh {
		k := d.string()
		header[k] = d.strings()
	}
	body := d.bytes()
	if d.err != nil || len(d.b) != 0 {
		return errMalformed
	}
	*e = entry{kind: entryKind(kind), status: status, stored: time.Unix(0, stored), ttl: ttl,
		id: id, vary: vary, tags: tags, header: header, body: body}
	return nil
}

// MarshalJSON encodes e for the JSON codec as one JSON string: the base64 of MarshalBinary.
func (e *entry) MarshalJSON() ([]byte, error) {
	b, _ := e.MarshalBinary()
	return json.Marshal(b)
}

// UnmarshalJSON decodes what MarshalJSON made.
func (e *entry) UnmarshalJSON(data []byte) error {
	var b []byte
	if err := json.Unmarshal(data, &b); err != nil {
		return errors.Join(errMalformed, err)
	}
	return e.UnmarshalBinary(b)
}

// decoder reads an encoded entry; its first failure sticks in err, and later reads return zero
// values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || n > len(d.b) {
		d.err = errMalformed
		return make([]byte, n) // zeros; n is a small constant here
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) byte() byte { return d.take(1)[0] }

// count reads a count of items each at least min bytes long, and fails when the bytes left
// cannot hold that many.
func (d *decoder) count(min int) int {
	if d.err != nil {
		return 0
	}
	n, w := binary.Uvarint(d.b)
	if w <= 0 || n > uint64(len(d.b)-w)/uint64(min) {
		d.err = errMalformed
		return 0
	}
	d.b = d.b[w:]
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.count(1)
	if d.err != nil {
		return nil
	}
	p := bytes.Clone(d.b[:n]) // the codec may reuse data once decoding returns
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) strings() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.string()
	}
	return ss
}
