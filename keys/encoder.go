package keys

import (
	"reflect"
	"strconv"
	"time"
	"unsafe"
)

// An Encoder appends the encoding of values of type A, the bytes Append and AppendAny give, and
// does for struct and array types what Append does for basic kinds: it encodes them without
// reflect and without allocating. Build one per type with EncoderFor, once, and reuse it; it is
// safe for concurrent use. The zero Encoder is valid and encodes as Append does.
type Encoder[A any] struct {
	plan *plan // nil: A is encoded by Append
}

// EncoderFor returns the Encoder of type A. It first checks, as Check does, that values of A can
// be encoded, and returns Check's error, which wraps ErrUnsupported, when they cannot.
//
// When A is a struct or array type whose encoding is a walk of its memory — its fields and
// elements, nested, are basic kinds, time.Time, and structs and arrays of those, and none of
// them is encoded by a MarshalText or String method — EncoderFor plans that walk: the offset and
// kind of every field. Other types (pointers, interfaces, slices other than byte slices, types
// with a method the encoding uses, a time.Time reached through an unexported field, which is
// encoded as the struct it is) are encoded by Append, and cost what it costs.
//
// Cost: it walks A's type and allocates; call it at construction, not per call.
func EncoderFor[A any]() (*Encoder[A], error) {
	t := reflect.TypeFor[A]()
	if err := Check(t); err != nil {
		return nil, err
	}
	e := &Encoder[A]{}
	if k := t.Kind(); (k == reflect.Struct && t != timeType) || k == reflect.Array {
		e.plan = planFor(t)
	}
	return e, nil
}

// Append appends the encoding of a to dst, the same bytes as Append(dst, a) and AppendAny(dst,
// a), and returns the extended slice; on error it returns dst unchanged and AppendAny's error.
//
// Cost: no allocation when dst has capacity, for the types Append encodes without allocating and
// for the struct and array types EncoderFor plans; other types cost what AppendAny costs.
func (e *Encoder[A]) Append(dst []byte, a A) ([]byte, error) {
	if e.plan != nil {
		return e.plan.append(dst, unsafe.Pointer(&a)), nil
	}
	return Append(dst, a)
}

// A plan encodes the values of one type by reading their memory at offsets found once: its
// steps, then tail.
type plan struct {
	steps []step
	tail  string // the bytes after the last step: closing brackets
}

// A step appends lit, then the value of kind at offset off from the start of the value.
type step struct {
	lit  string // the bytes before the value: brackets, separators and the value's tag
	kind stepKind
	off  uintptr
	// stepArray only:
	elem *plan   // the plan of one element
	n    int     // the number of elements, at least 1
	size uintptr // the size of one element
}

// stepKind is how a step reads and writes its value; the tag is in the step's lit.
type stepKind uint8

const (
	stepBool stepKind = iota
	stepInt8
	stepInt16
	stepInt32
	stepInt64
	stepUint8
	stepUint16
	stepUint32
	stepUint64
	stepFloat32
	stepFloat64
	stepComplex64
	stepComplex128
	stepString
	stepBytes
	stepTime
	stepArray
)

// append appends the encoding of the value at p. It reads the value and writes only dst.
func (pl *plan) append(dst []byte, p unsafe.Pointer) []byte {
	for i := range pl.steps {
		s := &pl.steps[i]
		dst = append(dst, s.lit...)
		q := unsafe.Add(p, s.off)
		switch s.kind {
		case stepBool:
			if *(*bool)(q) {
				dst = append(dst, '1')
			} else {
				dst = append(dst, '0')
			}
		case stepInt8:
			dst = strconv.AppendInt(dst, int64(*(*int8)(q)), 10)
		case stepInt16:
			dst = strconv.AppendInt(dst, int64(*(*int16)(q)), 10)
		case stepInt32:
			dst = strconv.AppendInt(dst, int64(*(*int32)(q)), 10)
		case stepInt64:
			dst = strconv.AppendInt(dst, *(*int64)(q), 10)
		case stepUint8:
			dst = strconv.AppendUint(dst, uint64(*(*uint8)(q)), 10)
		case stepUint16:
			dst = strconv.AppendUint(dst, uint64(*(*uint16)(q)), 10)
		case stepUint32:
			dst = strconv.AppendUint(dst, uint64(*(*uint32)(q)), 10)
		case stepUint64:
			dst = strconv.AppendUint(dst, *(*uint64)(q), 10)
		case stepFloat32:
			dst = strconv.AppendFloat(dst, float64(*(*float32)(q)), 'g', -1, 32)
		case stepFloat64:
			dst = strconv.AppendFloat(dst, *(*float64)(q), 'g', -1, 64)
		case stepComplex64:
			dst = appendComplex(dst, "", complex128(*(*complex64)(q)), 64)
		case stepComplex128:
			dst = appendComplex(dst, "", *(*complex128)(q), 128)
		case stepString:
			s := *(*string)(q)
			dst = strconv.AppendInt(dst, int64(len(s)), 10)
			dst = append(append(dst, ':'), s...)
		case stepBytes:
			b := *(*[]byte)(q)
			dst = strconv.AppendInt(dst, int64(len(b)), 10)
			dst = append(append(dst, ':'), b...)
		case stepTime:
			dst = (*(*time.Time)(q)).UTC().AppendFormat(dst, time.RFC3339Nano)
		case stepArray:
			for j := range s.n {
				if j > 0 {
					dst = append(dst, ',')
				}
				dst = s.elem.append(dst, unsafe.Add(q, uintptr(j)*s.size))
			}
		}
	}
	return append(dst, pl.tail...)
}

// planFor returns the plan of t, or nil if the encoding of t is not a walk of its memory.
func planFor(t reflect.Type) *plan {
	var b planner
	if !b.add(t, 0, true, 0) {
		return nil
	}
	return b.plan()
}

// planner builds a plan: the steps so far, and the bytes to write before the next one.
type planner struct {
	steps []step
	lit   []byte
}

func (b *planner) plan() *plan {
	return &plan{steps: b.steps, tail: string(b.lit)}
}

func (b *planner) step(tag string, kind stepKind, off uintptr) {
	b.steps = append(b.steps, step{lit: string(b.lit) + tag, kind: kind, off: off})
	b.lit = b.lit[:0]
}

// add adds the steps that encode a value of type t at offset off, as appendValue encodes it at
// depth depth, and reports whether steps can. methods is false below an unexported struct field,
// where appendValue calls no methods.
func (b *planner) add(t reflect.Type, off uintptr, methods bool, depth int) bool {
	if depth > maxDepth {
		return false // appendValue reports the depth.
	}
	// Basic kinds first, by kind, as appendValue does.
	switch t.Kind() {
	case reflect.Bool:
		b.step("b", stepBool, off)
		return true
	case reflect.Int:
		b.step("i:", intStep(t), off)
		return true
	case reflect.Int8:
		b.step("i8:", stepInt8, off)
		return true
	case reflect.Int16:
		b.step("i16:", stepInt16, off)
		return true
	case reflect.Int32:
		b.step("i32:", stepInt32, off)
		return true
	case reflect.Int64:
		b.step("i64:", stepInt64, off)
		return true
	case reflect.Uint:
		b.step("u:", uintStep(t), off)
		return true
	case reflect.Uint8:
		b.step("u8:", stepUint8, off)
		return true
	case reflect.Uint16:
		b.step("u16:", stepUint16, off)
		return true
	case reflect.Uint32:
		b.step("u32:", stepUint32, off)
		return true
	case reflect.Uint64:
		b.step("u64:", stepUint64, off)
		return true
	case reflect.Uintptr:
		b.step("up:", uintStep(t), off)
		return true
	case reflect.Float32:
		b.step("f32:", stepFloat32, off)
		return true
	case reflect.Float64:
		b.step("f64:", stepFloat64, off)
		return true
	case reflect.Complex64:
		b.step("c64:", stepComplex64, off)
		return true
	case reflect.Complex128:
		b.step("c128:", stepComplex128, off)
		return true
	case reflect.String:
		b.step("s", stepString, off)
		return true
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			b.step("y", stepBytes, off)
			return true
		}
		return false
	}
	if methods {
		switch ruleFor(t) {
		case ruleTime:
			b.step("T:", stepTime, off)
			return true
		case ruleNone:
		default:
			return false // a MarshalText or String method: AppendAny calls it.
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		b.lit = append(b.lit, '{')
		for i := range t.NumField() {
			if i > 0 {
				b.lit = append(b.lit, ',')
			}
			f := t.Field(i)
			if !b.add(f.Type, off+f.Offset, methods && f.IsExported(), depth+1) {
				return false
			}
		}
		b.lit = append(b.lit, '}')
		return true
	case reflect.Array:
		n := t.Len()
		b.lit = append(b.lit, '[')
		b.lit = strconv.AppendInt(b.lit, int64(n), 10)
		b.lit = append(b.lit, ':')
		if n > 0 {
			// Elements are read as they are reached: through a field or not, as their array.
			var eb planner
			if !eb.add(t.Elem(), 0, methods, depth+1) {
				return false
			}
			b.steps = append(b.steps, step{lit: string(b.lit), kind: stepArray, off: off, elem: eb.plan(), n: n, size: t.Elem().Size()})
			b.lit = b.lit[:0]
		}
		b.lit = append(b.lit, ']')
		return true
	}
	return false // pointers, interfaces, other slices, maps, funcs, chans, unsafe pointers
}

// intStep and uintStep read int, uint and uintptr, whose size depends on the platform.
func intStep(t reflect.Type) stepKind {
	if t.Size() == 4 {
		return stepInt32
	}
	return stepInt64
}

func uintStep(t reflect.Type) stepKind {
	if t.Size() == 4 {
		return stepUint32
	}
	return stepUint64
}
