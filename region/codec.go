package region

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"

	"github.com/dogpile-go/dogpile/backends"
)

// Codec encodes values for backends that store bytes. Unmarshal receives a pointer to a value of
// the view's type. Implementations must be safe for concurrent use.
//
// Unmarshal reads bytes the library did not write (any writer to the backend may have put them
// there), so it must return an error, not panic or allocate without bound, whatever data holds.
// The region turns any Unmarshal error, and a panic too, into a miss and one reported error
// that wraps backends.ErrMalformed.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default Codec: encoding/json. Values stay readable in redis-cli and by programs in
// other languages; unexported fields are not stored.
//
// Unmarshal checks that data is valid JSON before it decodes anything, and then allocates in
// proportion to what data holds: whatever the bytes (deeply nested arrays or objects, long
// strings, huge numbers, many small values), decoding into any, []any, map[string]any or a
// struct allocates at most 128 times len(data) plus 4 KiB, which the tests and fuzz targets
// hold it to. The dearest input we know, objects nested in objects ({"":{"":{...}}}), costs
// about 71 times its size into any: a map for every 5 bytes. A destination type with large
// fixed-size fields, such as arrays, costs their size for each element the data holds.
var JSON Codec = jsonCodec{}

// Gob is a Codec on encoding/gob: Go-only, keeps more of Go's types than JSON does (integers
// keep their width, maps with non-string keys). Each value is encoded with its own type
// description, so it costs more bytes per entry than a gob stream would.
//
// encoding/gob sizes maps, slices and its message buffer from the counts data declares, so a
// few hostile bytes could make it allocate gigabytes. Unmarshal therefore first scans data as
// gob will read it and rejects (with an error that wraps backends.ErrMalformed) a stream in
// which any count (message, string, slice, array, map, interface name, GobEncoder bytes) is
// larger than the bytes that remain, before gob sees it; the scan allocates a little per type
// definition in data and nothing else. After it, what gob allocates in advance for a map or
// slice is at most one element (or map slot) of the destination's type per byte of data, and
// the rest is for values decoded from bytes read. Decoding into a map[string]int, a []string,
// a struct of basic fields or slices of them allocates at most 64 times len(data) plus 32 KiB
// (gob's per-decoder set-up). Element types with large fixed-size fields cost their size per
// byte; values nested deeper than 10000 levels are rejected; a type's own GobDecode,
// UnmarshalBinary or UnmarshalText is called with its bytes and bounds its own allocations.
var Gob Codec = gobCodec{}

// Raw is a Codec for values that are already bytes: []byte and string values (and pointers to
// them) are stored as they are, with no encoding. Other types are an error. Unmarshal
// allocates one copy of data, len(data) bytes, and never fails on its content.
var Raw Codec = rawCodec{}

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

type gobCodec struct{}

func (gobCodec) Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (gobCodec) Unmarshal(data []byte, v any) (err error) {
	defer func() {
		if p := recover(); p != nil { // gob has panicked on corrupt streams; its callers are ours
			err = fmt.Errorf("%w: region.Gob: decoder panicked: %v", backends.ErrMalformed, p)
		}
	}()
	if err := checkGob(data); err != nil {
		return fmt.Errorf("%w: region.Gob: %w", backends.ErrMalformed, err)
	}
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case string:
		return []byte(x), nil
	case *[]byte:
		return *x, nil
	case *string:
		return []byte(*x), nil
	}
	return nil, fmt.Errorf("region.Raw: cannot encode %T: only []byte and string", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	switch x := v.(type) {
	case *[]byte:
		*x = bytes.Clone(data)
		return nil
	case *string:
		*x = string(data)
		return nil
	}
	return fmt.Errorf("region.Raw: cannot decode into %T: only *[]byte and *string", v)
}
