package region

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
)

// Codec encodes values for backends that store bytes. Unmarshal receives a pointer to a value of
// the view's type. Implementations must be safe for concurrent use.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default Codec: encoding/json. Values stay readable in redis-cli and by programs in
// other languages; unexported fields are not stored.
var JSON Codec = jsonCodec{}

// Gob is a Codec on encoding/gob: Go-only, keeps more of Go's types than JSON does (integers
// keep their width, maps with non-string keys). Each value is encoded with its own type
// description, so it costs more bytes per entry than a gob stream would.
var Gob Codec = gobCodec{}

// Raw is a Codec for values that are already bytes: []byte and string values (and pointers to
// them) are stored as they are, with no encoding. Other types are an error.
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

func (gobCodec) Unmarshal(data []byte, v any) error {
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
