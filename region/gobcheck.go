package region

import (
	"errors"
	"fmt"
)

// checkGob scans data as encoding/gob's Decoder.Decode would read it for one value (the type
// definitions, then the value message), following the wire types the stream defines, and
// returns an error if a count that gob allocates from in advance is larger than the bytes that
// remain in the message that holds it: a message's length, a slice's or a map's element count,
// the field count of a struct type definition. Every element of every kind takes at least one
// byte on the wire, so a stream gob's encoder wrote passes. The scan allocates only for the
// stream's type definitions (a few words for each, and each takes bytes of data), and recurses
// at most gobMaxDepth levels.
//
// What this bounds: encoding/gob allocates in advance from declared counts in three places
// (Decoder.readMessage for a message, decodeSlice for a slice, reflect.MakeMapWithSize for a
// map); where checkGob passes, each of those counts is at most the bytes that remain, so what
// gob allocates in advance is at most that many elements (or map slots) of the destination's
// type. Everything else gob allocates is for values it decoded from bytes it read.
//
// The scan must read the bytes as gob does, or a count it has not seen could reach gob. One
// reading depends on the destination's Go type and not on the wire: gob decodes an interface
// value into a field the destination has, and skips the value's byte count for a field it
// lacks; and gob's encoder writes a count that does not cover the value when the value holds
// interfaces of types not sent before. Where the two readings part, the scan follows both (each
// in a run of its own, at most gobMaxRuns runs). A run may end where gob would fail too, before
// allocating from anything unchecked (a truncated integer, a field number out of range, an
// undefined type, a string longer than the rest); data passes if no run ends anywhere else and
// one run reads a whole value. The scan is stricter than gob in a few places that gob's encoder
// never writes: a wire type must define exactly one kind, and values may nest at most
// gobMaxDepth levels.
func checkGob(data []byte) error {
	var first error
	pending := [][]bool{nil} // the choices of each run still to make: true skips the value
	ok := false
	for runs := 0; len(pending) > 0; runs++ {
		if runs == gobMaxRuns {
			return fmt.Errorf("%w: more than %d readings of its interface values", errGobBad, gobMaxRuns)
		}
		choices := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		s := gobScan{stream: data, choices: choices}
		err := s.check()
		for _, i := range s.ambiguous {
			if i >= len(choices) {
				alt := make([]bool, i+1)
				copy(alt, choices)
				alt[i] = true
				pending = append(pending, alt)
			}
		}
		var ge *gobError
		switch {
		case err == nil:
			ok = true
		case errors.As(err, &ge) && ge.gobToo:
			first = cmpErr(first, err)
		default:
			return err // gob might go on and allocate: reject
		}
	}
	if !ok {
		return first
	}
	return nil
}

// gobMaxRuns bounds the readings of one stream (see checkGob).
const gobMaxRuns = 64

// gobMaxDepth bounds the nesting of values (and so the scan's recursion); gob itself gives up at
// 10000 levels in values it skips.
const gobMaxDepth = 10000

// Type ids gob predefines (encoding/gob/type.go): the basic types, then the types of its own
// type definitions (16-23), then reserved ids up to 63.
const (
	gobBool      = 1
	gobInt       = 2
	gobUint      = 3
	gobFloat     = 4
	gobBytes     = 5
	gobString    = 6
	gobComplex   = 7
	gobInterface = 8
	gobFirstUser = 64
	gobTooBig    = 1 << 30 // gob's own sanity limit on a message's length (64-bit)
)

// Kinds of user-defined wire types.
const (
	gobKindArray = iota + 1
	gobKindSlice
	gobKindStruct
	gobKindMap
	gobKindEncoder // GobEncoder, BinaryMarshaler, TextMarshaler: a byte count, then the bytes
)

// gobType is a wire type the stream defined.
type gobType struct {
	kind      int
	elem, key int32
	len       uint64  // arrays
	fields    []int32 // structs: the type id of each field, in wire order
}

var errGobBad = errors.New("gob stream rejected")

// gobError is why a run of the scan stopped; gobToo is set where gob would stop too, having
// allocated nothing from an unchecked count.
type gobError struct {
	msg    string
	gobToo bool
}

func (e *gobError) Error() string { return errGobBad.Error() + ": " + e.msg }
func (e *gobError) Unwrap() error { return errGobBad }

// gobScan is a reading of one stream; buf is the unread rest of the current message, stream
// what follows that message.
type gobScan struct {
	stream []byte
	buf    []byte
	msgs   int // messages read so far
	types  map[int32]*gobType
	depth  int

	choices   []bool // for the interface values read so far, in order: skip (true) or decode
	ifaces    int    // interface values read so far
	ambiguous []int  // the interface values whose two readings part
}

// fail stops the scan where gob might read on.
func (s *gobScan) fail(format string, args ...any) error {
	return &gobError{msg: fmt.Sprintf(format, args...)}
}

// gobFails stops the scan where gob fails too.
func (s *gobScan) gobFails(format string, args ...any) error {
	return &gobError{msg: fmt.Sprintf(format, args...), gobToo: true}
}

func (s *gobScan) check() error {
	id, err := s.typeSequence(false)
	if err != nil {
		return err
	}
	return s.value(id)
}

// nextMessage reads the next message of the stream into buf (Decoder.recvMessage).
func (s *gobScan) nextMessage() error {
	n, rest, ok := readGobUint(s.stream)
	switch {
	case !ok:
		return s.gobFails("bad message length")
	case n == 0 || n >= gobTooBig:
		return s.gobFails("message of %d bytes", n)
	case n > uint64(len(rest)):
		return s.fail("message of %d bytes with %d left", n, len(rest))
	}
	s.buf, s.stream = rest[:n], rest[n:]
	s.msgs++
	return nil
}

// readGobUint decodes an unsigned integer as gob writes it: one byte below 128, else the negated
// count of big-endian bytes that follow (at most 8).
func readGobUint(b []byte) (uint64, []byte, bool) {
	if len(b) == 0 {
		return 0, b, false
	}
	c := b[0]
	if c <= 0x7f {
		return uint64(c), b[1:], true
	}
	n := -int(int8(c))
	if n > 8 || len(b)-1 < n {
		return 0, b, false
	}
	var x uint64
	for _, d := range b[1 : 1+n] {
		x = x<<8 | uint64(d)
	}
	return x, b[1+n:], true
}

func (s *gobScan) uint() (uint64, error) {
	x, rest, ok := readGobUint(s.buf)
	if !ok {
		return 0, s.gobFails("bad unsigned integer")
	}
	s.buf = rest
	return x, nil
}

func (s *gobScan) int() (int64, error) {
	x, err := s.uint()
	i := int64(x >> 1)
	if x&1 != 0 {
		i = ^i
	}
	return i, err
}

// count reads a count of things that each take at least one byte of what remains, from which
// gob allocates in advance.
func (s *gobScan) count(what string) (uint64, error) {
	n, err := s.uint()
	if err == nil && n > uint64(len(s.buf)) {
		err = s.fail("%s of %d with %d bytes left", what, n, len(s.buf))
	}
	return n, err
}

// skip reads a byte count and drops that many bytes; gob checks such a count before it
// allocates (decoderState.getLength).
func (s *gobScan) skip(what string) error {
	n, err := s.uint()
	if err != nil {
		return err
	}
	if n > uint64(len(s.buf)) {
		return s.gobFails("%s of %d with %d bytes left", what, n, len(s.buf))
	}
	s.buf = s.buf[n:]
	return nil
}

// typeSequence reads type definitions up to the id of the value that follows
// (Decoder.decodeTypeSequence), reading the next message whenever the current one is used up.
func (s *gobScan) typeSequence(inInterface bool) (int32, error) {
	for {
		if len(s.buf) == 0 {
			if err := s.nextMessage(); err != nil {
				return 0, err
			}
		}
		i, err := s.int()
		if err != nil {
			return 0, err
		}
		id := int32(i) // gob's typeId is an int32: it truncates too
		if id >= 0 {
			return id, nil
		}
		if err := s.define(-id); err != nil {
			return 0, err
		}
		if len(s.buf) > 0 {
			if !inInterface {
				return 0, s.gobFails("extra data after a type definition")
			}
			if _, err := s.uint(); err != nil {
				return 0, err
			}
		}
	}
}

// define reads the wireType that defines id.
func (s *gobScan) define(id int32) error {
	if id < gobFirstUser {
		return s.gobFails("definition of reserved type id %d", id)
	}
	if s.types == nil {
		s.types = make(map[int32]*gobType)
	}
	if s.types[id] != nil {
		return s.gobFails("type id %d defined twice", id)
	}
	t := new(gobType)
	defined := 0
	err := s.structFields(func(field uint64) error {
		defined++
		switch field {
		case 0: // ArrayT: CommonType, Elem, Len
			t.kind = gobKindArray
			return s.structFields(func(f uint64) error {
				switch f {
				case 0:
					return s.commonType()
				case 1:
					return s.typeID(&t.elem)
				case 2:
					n, err := s.int()
					t.len = uint64(n)
					return err
				}
				return s.gobFails("array type field %d", f)
			})
		case 1: // SliceT: CommonType, Elem
			t.kind = gobKindSlice
			return s.structFields(func(f uint64) error {
				switch f {
				case 0:
					return s.commonType()
				case 1:
					return s.typeID(&t.elem)
				}
				return s.gobFails("slice type field %d", f)
			})
		case 2: // StructT: CommonType, Field []fieldType{Name, Id}
			t.kind = gobKindStruct
			return s.structFields(func(f uint64) error {
				switch f {
				case 0:
					return s.commonType()
				case 1:
					n, err := s.count("struct type fields")
					if err != nil {
						return err
					}
					t.fields = make([]int32, n)
					for i := range t.fields {
						if len(s.buf) == 0 {
							return s.gobFails("struct type fields end early")
						}
						if err := s.structFields(func(f uint64) error {
							switch f {
							case 0:
								return s.skip("field name")
							case 1:
								return s.typeID(&t.fields[i])
							}
							return s.gobFails("field type field %d", f)
						}); err != nil {
							return err
						}
					}
					return nil
				}
				return s.gobFails("struct type field %d", f)
			})
		case 3: // MapT: CommonType, Key, Elem
			t.kind = gobKindMap
			return s.structFields(func(f uint64) error {
				switch f {
				case 0:
					return s.commonType()
				case 1:
					return s.typeID(&t.key)
				case 2:
					return s.typeID(&t.elem)
				}
				return s.gobFails("map type field %d", f)
			})
		case 4, 5, 6: // GobEncoderT, BinaryMarshalerT, TextMarshalerT: CommonType
			t.kind = gobKindEncoder
			return s.structFields(func(f uint64) error {
				if f == 0 {
					return s.commonType()
				}
				return s.gobFails("encoder type field %d", f)
			})
		}
		return s.gobFails("wire type field %d", field)
	})
	if err != nil {
		return err
	}
	if defined != 1 {
		return s.fail("type id %d defines %d kinds, want 1", id, defined)
	}
	s.types[id] = t
	return nil
}

// commonType reads a CommonType{Name string; Id typeId}.
func (s *gobScan) commonType() error {
	return s.structFields(func(f uint64) error {
		switch f {
		case 0:
			return s.skip("type name")
		case 1:
			_, err := s.int()
			return err
		}
		return s.gobFails("common type field %d", f)
	})
}

func (s *gobScan) typeID(dst *int32) error {
	i, err := s.int()
	*dst = int32(i)
	return err
}

// structFields reads a struct's fields, calling field with each one's number; the struct ends
// at a zero delta or at the end of the message (decodeStruct).
func (s *gobScan) structFields(field func(uint64) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	num := int64(-1)
	for len(s.buf) > 0 {
		d, err := s.uint()
		if err != nil {
			return err
		}
		if d == 0 {
			return nil
		}
		if d > 1<<31 { // more fields than any struct has: out of range, as gob finds
			return s.gobFails("field delta %d", d)
		}
		num += int64(d)
		if num > 1<<31 {
			return s.gobFails("field number %d", num)
		}
		if err := field(uint64(num)); err != nil {
			return err
		}
	}
	return nil
}

func (s *gobScan) enter() error {
	s.depth++
	if s.depth > gobMaxDepth {
		return s.fail("nested more than %d levels", gobMaxDepth)
	}
	return nil
}

func (s *gobScan) leave() { s.depth-- }

// value reads a value of wire type id as a message's body (Decoder.decodeValue): a struct's
// fields, or for any other type a zero delta and then the value (decodeSingle).
func (s *gobScan) value(id int32) error {
	if t := s.types[id]; t != nil && t.kind == gobKindStruct {
		return s.structValue(t)
	}
	d, err := s.uint()
	if err != nil {
		return err
	}
	if d != 0 {
		return s.gobFails("non-zero delta %d for a single value", d)
	}
	return s.elem(id)
}

func (s *gobScan) structValue(t *gobType) error {
	return s.structFields(func(f uint64) error {
		if f >= uint64(len(t.fields)) {
			return s.gobFails("field %d of a struct of %d", f, len(t.fields))
		}
		return s.elem(t.fields[f])
	})
}

// elem reads one value of wire type id where a field or element holds it.
func (s *gobScan) elem(id int32) error {
	switch id {
	case gobBool, gobInt, gobUint, gobFloat:
		_, err := s.uint()
		return err
	case gobComplex:
		if _, err := s.uint(); err != nil {
			return err
		}
		_, err := s.uint()
		return err
	case gobBytes:
		return s.skip("byte slice length")
	case gobString:
		return s.skip("string length")
	case gobInterface:
		return s.iface()
	}
	t := s.types[id]
	if t == nil {
		if id >= gobFirstUser { // gob fails to compile a decoder for it, before reading data
			return s.gobFails("undefined type id %d", id)
		}
		return s.fail("undefined type id %d", id)
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	switch t.kind {
	case gobKindStruct:
		return s.structValue(t)
	case gobKindEncoder:
		return s.skip("encoded value length")
	case gobKindArray, gobKindSlice:
		var n uint64
		var err error
		if t.kind == gobKindArray { // its size is the destination type's: nothing allocated from n
			if n, err = s.uint(); err == nil && n != t.len {
				err = s.gobFails("array of %d, want %d", n, t.len)
			}
		} else {
			n, err = s.count("slice length")
		}
		if err != nil {
			return err
		}
		for range n {
			if len(s.buf) == 0 { // decodeArrayHelper's check
				return s.gobFails("array or slice ends early")
			}
			if err := s.elem(t.elem); err != nil {
				return err
			}
		}
		return nil
	case gobKindMap:
		n, err := s.count("map length")
		if err != nil {
			return err
		}
		for range n {
			if err := s.elem(t.key); err != nil {
				return err
			}
			if err := s.elem(t.elem); err != nil {
				return err
			}
		}
		return nil
	}
	return s.fail("type id %d of unknown kind", id)
}

// iface reads an interface value: the concrete type's name (empty for nil), its type
// definitions and id, a byte count, and the value. gob decodes the value (decodeInterface) into
// a field the destination has, and drops the byte count (ignoreInterface) for one it lacks; the
// run's choices say which reading this run follows, and the interface is recorded as ambiguous
// when the two part.
func (s *gobScan) iface() error {
	n, err := s.uint()
	if err != nil {
		return err
	}
	if n > uint64(len(s.buf)) {
		return s.gobFails("interface type name of %d bytes with %d left", n, len(s.buf))
	}
	if n == 0 {
		return nil // nil
	}
	if n > 1024 { // decodeInterface fails; ignoreInterface reads on
		return s.fail("interface type name of %d bytes", n)
	}
	s.buf = s.buf[n:]
	if err := s.enter(); err != nil { // an interface may hold an interface, and so on
		return err
	}
	defer s.leave()
	id, err := s.typeSequence(true)
	if err != nil {
		return err
	}
	size, err := s.uint()
	if err != nil {
		return err
	}
	i := s.ifaces
	s.ifaces++
	if i < len(s.choices) && s.choices[i] {
		if size > uint64(len(s.buf)) {
			return s.gobFails("interface value of %d bytes with %d left", size, len(s.buf))
		}
		s.buf = s.buf[size:]
		return nil
	}
	msgs, left := s.msgs, len(s.buf)
	if err := s.value(id); err != nil {
		return err
	}
	if s.msgs != msgs || uint64(left-len(s.buf)) != size {
		s.ambiguous = append(s.ambiguous, i)
	}
	return nil
}
