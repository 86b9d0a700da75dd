package keys

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Sep separates the namespace from the arguments in every key the default generator makes.
const Sep = '|'

// ErrUnsupported is returned, wrapped with the offending type, when an argument cannot be encoded:
// maps, funcs, chans and unsafe pointers (unless they implement encoding.TextMarshaler or
// fmt.Stringer), and values nested deeper than 64 levels (a pointer cycle). Test with errors.Is.
var ErrUnsupported = errors.New("keys: unsupported argument type")

// ErrInvalidNamespace is returned, wrapped, by ValidNamespace and Default for an empty namespace or
// one containing Sep. Test with errors.Is.
var ErrInvalidNamespace = errors.New("keys: invalid namespace")

// maxDepth bounds how deeply AppendAny follows pointers, interfaces, structs, arrays and slices.
// Deeper values (in practice, pointer cycles) are reported as ErrUnsupported.
const maxDepth = 64

var (
	timeType          = reflect.TypeFor[time.Time]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	stringerType      = reflect.TypeFor[fmt.Stringer]()
)

// ValidNamespace reports an error (wrapping ErrInvalidNamespace) if ns contains Sep or is empty.
// It does not allocate when ns is valid.
func ValidNamespace(ns string) error {
	if ns == "" {
		return fmt.Errorf("%w: empty", ErrInvalidNamespace)
	}
	if strings.IndexByte(ns, Sep) >= 0 {
		return fmt.Errorf("%w: %q contains %q", ErrInvalidNamespace, ns, Sep)
	}
	return nil
}

// Generator makes a key from a namespace and a function's arguments. A Generator must be
// deterministic, and injective in its arguments: different arguments must give different keys.
type Generator func(namespace string, args ...any) (string, error)

var _ Generator = Default

// Default is the default Generator: namespace + "|" + args encoded with AppendAny, joined by ','.
// With no arguments the key is namespace + "|". The namespace must pass ValidNamespace.
// See the package documentation for the format, which is stable across releases.
//
// Cost: one allocation for the returned string when the key fits in 128 bytes, plus whatever
// AppendAny costs for arguments that are not basic kinds; the caller boxes args into interfaces.
func Default(namespace string, args ...any) (string, error) {
	if err := ValidNamespace(namespace); err != nil {
		return "", err
	}
	var buf [128]byte
	b := append(buf[:0], namespace...)
	b = append(b, Sep)
	for i, arg := range args {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = AppendAny(b, arg); err != nil {
			return "", fmt.Errorf("%s argument %d: %w", namespace, i, err)
		}
	}
	return string(b), nil
}

// AppendAny appends the encoding of one argument to dst, chosen by arg's dynamic type as the
// package documentation describes, and returns the extended slice. On error it returns dst
// unchanged (same length) and an error wrapping ErrUnsupported, or the error of a MarshalText
// method. A panic in an argument's MarshalText or String method is not recovered.
//
// Cost: no allocation for basic kinds (named or not) and time.Time when dst has capacity; the
// most common predeclared types skip reflect. Other values go through reflect, which allocates
// for values with methods (boxing, and the text that MarshalText or String returns) and for
// wrapping errors.
func AppendAny(dst []byte, arg any) ([]byte, error) {
	switch v := arg.(type) {
	case nil:
		return append(dst, 'n'), nil
	case string:
		return appendString(dst, 's', v), nil
	case []byte:
		return appendString(dst, 'y', v), nil
	case bool:
		return appendBool(dst, v), nil
	case int:
		return appendInt(dst, "i:", int64(v)), nil
	case int64:
		return appendInt(dst, "i64:", v), nil
	case int32:
		return appendInt(dst, "i32:", int64(v)), nil
	case uint:
		return appendUint(dst, "u:", uint64(v)), nil
	case uint64:
		return appendUint(dst, "u64:", v), nil
	case uint32:
		return appendUint(dst, "u32:", uint64(v)), nil
	case float64:
		return appendFloat(dst, "f64:", v, 64), nil
	case time.Time:
		return appendTime(dst, v), nil
	}
	n := len(dst)
	dst, err := appendValue(dst, reflect.ValueOf(arg), 0)
	if err != nil {
		return dst[:n], err
	}
	return dst, nil
}

// Append is the generic fast path: it appends the same bytes as AppendAny(dst, any(a)).
// For basic kinds (string, []byte, bool, every int, uint, float and complex kind, including named
// types whose underlying kind is one of these) and for time.Time it does not allocate when dst
// has capacity; other types take AppendAny's path and cost what it costs. An Encoder (see
// EncoderFor) also encodes structs and arrays of these without allocating.
func Append[A any](dst []byte, a A) ([]byte, error) {
	// Reading a through a pointer to its underlying type is sound: a type and its underlying
	// type have the same memory layout, and each case matches the kind to that type.
	p := unsafe.Pointer(&a)
	switch t := reflect.TypeFor[A](); t.Kind() {
	case reflect.String:
		return appendString(dst, 's', *(*string)(p)), nil
	case reflect.Bool:
		return appendBool(dst, *(*bool)(p)), nil
	case reflect.Int:
		return appendInt(dst, "i:", int64(*(*int)(p))), nil
	case reflect.Int8:
		return appendInt(dst, "i8:", int64(*(*int8)(p))), nil
	case reflect.Int16:
		return appendInt(dst, "i16:", int64(*(*int16)(p))), nil
	case reflect.Int32:
		return appendInt(dst, "i32:", int64(*(*int32)(p))), nil
	case reflect.Int64:
		return appendInt(dst, "i64:", *(*int64)(p)), nil
	case reflect.Uint:
		return appendUint(dst, "u:", uint64(*(*uint)(p))), nil
	case reflect.Uint8:
		return appendUint(dst, "u8:", uint64(*(*uint8)(p))), nil
	case reflect.Uint16:
		return appendUint(dst, "u16:", uint64(*(*uint16)(p))), nil
	case reflect.Uint32:
		return appendUint(dst, "u32:", uint64(*(*uint32)(p))), nil
	case reflect.Uint64:
		return appendUint(dst, "u64:", *(*uint64)(p)), nil
	case reflect.Uintptr:
		return appendUint(dst, "up:", uint64(*(*uintptr)(p))), nil
	case reflect.Float32:
		return appendFloat(dst, "f32:", float64(*(*float32)(p)), 32), nil
	case reflect.Float64:
		return appendFloat(dst, "f64:", *(*float64)(p), 64), nil
	case reflect.Complex64:
		return appendComplex(dst, "c64:", complex128(*(*complex64)(p)), 64), nil
	case reflect.Complex128:
		return appendComplex(dst, "c128:", *(*complex128)(p), 128), nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return appendString(dst, 'y', *(*[]byte)(p)), nil
		}
	case reflect.Struct:
		if t == timeType {
			return appendTime(dst, *(*time.Time)(p)), nil
		}
	}
	return AppendAny(dst, a)
}

// Check reports whether values of static type t can ever be encoded: it returns nil if every
// value of type t can be, and otherwise an error wrapping ErrUnsupported that names the first
// offending type found. Interface types, and types reached through them, are checked per value
// at call time, so Check returns nil for them (and for a nil t). Check follows the same rules as
// AppendAny, so a type with a MarshalText or String method is accepted whatever its fields.
// Values nested deeper than 64 levels still fail at call time.
//
// Cost: it walks the type once and allocates; call it at construction, not per call.
func Check(t reflect.Type) error {
	return check(t, true, make(map[checked]bool))
}

type checked struct {
	t       reflect.Type
	methods bool
}

// check is Check for t; methods is false below an unexported struct field, where AppendAny
// cannot call methods and encodes by kind alone.
func check(t reflect.Type, methods bool, seen map[checked]bool) error {
	if t == nil || t.Kind() == reflect.Interface || isBasic(t) {
		return nil
	}
	if methods && ruleFor(t) != ruleNone {
		return nil
	}
	if seen[checked{t, methods}] {
		return nil // already being checked further up: a recursive type.
	}
	seen[checked{t, methods}] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Array, reflect.Slice:
		return check(t.Elem(), methods, seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if err := check(f.Type, methods && f.IsExported(), seen); err != nil {
				return fmt.Errorf("field %s of %s: %w", f.Name, t, err)
			}
		}
		return nil
	}
	return unsupported(t)
}

func unsupported(t reflect.Type) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, t)
}

// isBasic reports whether t is encoded by its kind alone, ignoring its methods.
func isBasic(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.Uint8
	}
	return false
}

// rule says which method-based encoding a non-basic type gets.
type rule uint8

const (
	ruleNone   rule = iota
	ruleTime        // time.Time: "T:" + UTC RFC 3339
	ruleText        // encoding.TextMarshaler: "m" + len + ":" + text
	ruleString      // fmt.Stringer: "S" + len + ":" + String()
)

// ruleFor returns the method-based rule for t, or ruleNone. A pointer uses its own methods only
// when its element would not: *time.Time is "*T:...", not its MarshalText, and a pointer to a
// basic kind or to a type with value-receiver methods is "*" + the element's encoding.
func ruleFor(t reflect.Type) rule {
	if t == timeType {
		return ruleTime
	}
	if isBasic(t) {
		return ruleNone
	}
	if t.Kind() == reflect.Pointer {
		e := t.Elem()
		// A pointer to a pointer has no methods, and e's rule needs no further recursion.
		if e.Kind() == reflect.Pointer || isBasic(e) || ruleFor(e) != ruleNone {
			return ruleNone
		}
	}
	if t.Implements(textMarshalerType) {
		return ruleText
	}
	if t.Implements(stringerType) {
		return ruleString
	}
	return ruleNone
}

// appendValue appends the encoding of v. depth counts the levels of nesting above v.
func appendValue(dst []byte, v reflect.Value, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, fmt.Errorf("%w: %s nested more than %d levels deep (a cycle?)", ErrUnsupported, v.Type(), maxDepth)
	}
	k := v.Kind()
	switch k {
	case reflect.Invalid:
		return append(dst, 'n'), nil
	case reflect.Interface:
		if v.IsNil() {
			return append(dst, 'n'), nil
		}
		return appendValue(dst, v.Elem(), depth+1)
	case reflect.Pointer:
		if v.IsNil() {
			return append(dst, 'n'), nil
		}
	case reflect.Slice:
		if v.IsNil() && v.Type().Elem().Kind() != reflect.Uint8 {
			return append(dst, 'n'), nil
		}
	}
	switch k {
	case reflect.String:
		return appendString(dst, 's', v.String()), nil
	case reflect.Bool:
		return appendBool(dst, v.Bool()), nil
	case reflect.Int:
		return appendInt(dst, "i:", v.Int()), nil
	case reflect.Int8:
		return appendInt(dst, "i8:", v.Int()), nil
	case reflect.Int16:
		return appendInt(dst, "i16:", v.Int()), nil
	case reflect.Int32:
		return appendInt(dst, "i32:", v.Int()), nil
	case reflect.Int64:
		return appendInt(dst, "i64:", v.Int()), nil
	case reflect.Uint:
		return appendUint(dst, "u:", v.Uint()), nil
	case reflect.Uint8:
		return appendUint(dst, "u8:", v.Uint()), nil
	case reflect.Uint16:
		return appendUint(dst, "u16:", v.Uint()), nil
	case reflect.Uint32:
		return appendUint(dst, "u32:", v.Uint()), nil
	case reflect.Uint64:
		return appendUint(dst, "u64:", v.Uint()), nil
	case reflect.Uintptr:
		return appendUint(dst, "up:", v.Uint()), nil
	case reflect.Float32:
		return appendFloat(dst, "f32:", v.Float(), 32), nil
	case reflect.Float64:
		return appendFloat(dst, "f64:", v.Float(), 64), nil
	case reflect.Complex64:
		return appendComplex(dst, "c64:", v.Complex(), 64), nil
	case reflect.Complex128:
		return appendComplex(dst, "c128:", v.Complex(), 128), nil
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return appendString(dst, 'y', v.Bytes()), nil
		}
	}
	t := v.Type()
	// Methods can be called only on values not reached through an unexported field.
	if v.CanInterface() {
		switch ruleFor(t) {
		case ruleTime:
			return appendTime(dst, v.Interface().(time.Time)), nil
		case ruleText:
			text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
			if err != nil {
				return dst, fmt.Errorf("keys: %s.MarshalText: %w", t, err)
			}
			return appendString(dst, 'm', text), nil
		case ruleString:
			return appendString(dst, 'S', v.Interface().(fmt.Stringer).String()), nil
		}
	}
	switch k {
	case reflect.Pointer:
		return appendValue(append(dst, '*'), v.Elem(), depth+1)
	case reflect.Struct:
		dst = append(dst, '{')
		for i := range v.NumField() {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendValue(dst, v.Field(i), depth+1); err != nil {
				return dst, fmt.Errorf("field %s of %s: %w", t.Field(i).Name, t, err)
			}
		}
		return append(dst, '}'), nil
	case reflect.Array, reflect.Slice:
		n := v.Len()
		dst = append(dst, '[')
		dst = strconv.AppendInt(dst, int64(n), 10)
		dst = append(dst, ':')
		for i := range n {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendValue(dst, v.Index(i), depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	return dst, unsupported(t)
}

// appendString appends tag + decimal length + ':' + s, for strings and byte slices.
func appendString[S string | []byte](dst []byte, tag byte, s S) []byte {
	dst = append(dst, tag)
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, "b1"...)
	}
	return append(dst, "b0"...)
}

func appendInt(dst []byte, tag string, i int64) []byte {
	return strconv.AppendInt(append(dst, tag...), i, 10)
}

func appendUint(dst []byte, tag string, u uint64) []byte {
	return strconv.AppendUint(append(dst, tag...), u, 10)
}

func appendFloat(dst []byte, tag string, f float64, bitSize int) []byte {
	return strconv.AppendFloat(append(dst, tag...), f, 'g', -1, bitSize)
}

// appendComplex appends tag + strconv.FormatComplex(c, 'g', -1, bitSize) without allocating.
func appendComplex(dst []byte, tag string, c complex128, bitSize int) []byte {
	dst = append(dst, tag...)
	dst = append(dst, '(')
	dst = strconv.AppendFloat(dst, real(c), 'g', -1, bitSize/2)
	n := len(dst)
	dst = strconv.AppendFloat(dst, imag(c), 'g', -1, bitSize/2)
	if dst[n] != '+' && dst[n] != '-' {
		dst = append(dst, 0)
		copy(dst[n+1:], dst[n:])
		dst[n] = '+'
	}
	return append(dst, "i)"...)
}

func appendTime(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(append(dst, "T:"...), time.RFC3339Nano)
}
