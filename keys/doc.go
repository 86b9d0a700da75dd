// Package keys makes cache keys: generators turn a namespace and a function's arguments into a
// string, and manglers turn that string into what a backend stores. Everything here is a pure
// function with no I/O, safe for concurrent use.
//
//	key, err := keys.Default("users.Load", 42, "eu")
//	// key == "users.Load|i:42,s2:eu"
//	mangle := keys.Chain(keys.SHA1, keys.Prefix("app:"))
//	backendKey := mangle(key) // "app:" + 40 hex digits
//
// # Key format
//
// The format is stable: a given namespace and arguments give the same key in every process,
// build, platform and release, so keys written by one version are read by the next. Changing
// the format is a breaking change.
//
// A key is the namespace, Sep ('|'), then the encoding of each argument, separated by ','. With
// no arguments it is the namespace followed by '|'. The namespace must be non-empty and must
// not contain '|' (see ValidNamespace). Each argument is encoded by its dynamic type, by the
// first rule that applies:
//
//  1. A nil interface, a nil pointer, or a nil slice whose element kind is not uint8: "n".
//     An empty non-nil slice is "[0:]", so nil and empty slices get different keys.
//  2. Basic kinds, by reflect.Kind, so a named type is encoded as its underlying kind and its
//     String or MarshalText methods are ignored:
//     string "s" + byte length + ":" + bytes, e.g. "s5:hello";
//     slice of a uint8 kind "y" + length + ":" + bytes (a nil one too: "y0:");
//     bool "b1" or "b0";
//     int "i:", int8 "i8:", int16 "i16:", int32 "i32:", int64 "i64:", uint "u:", uint8 "u8:",
//     uint16 "u16:", uint32 "u32:", uint64 "u64:", uintptr "up:", each followed by the decimal
//     value, e.g. "i:42", "i8:-3";
//     float32 "f32:" and float64 "f64:" followed by strconv.FormatFloat(x, 'g', -1, bits),
//     e.g. "f64:1", "f64:1e+21", "f64:-0", "f64:NaN", "f64:+Inf";
//     complex64 "c64:" and complex128 "c128:" followed by strconv.FormatComplex(x, 'g', -1,
//     bits), e.g. "c128:(1+2i)".
//  3. time.Time: "T:" + t.UTC().Format(time.RFC3339Nano), so one instant gives one key whatever
//     its Location, and the monotonic clock reading is ignored.
//  4. A type implementing encoding.TextMarshaler: "m" + length + ":" + text. An error from
//     MarshalText is returned, wrapped.
//  5. A type implementing fmt.Stringer: "S" + length + ":" + String().
//  6. A pointer: "*" + the encoding of the element. A struct: "{" + the encodings of all its
//     fields, exported or not, in order, separated by ',' + "}". An array or slice: "[" +
//     decimal length + ":" + the elements separated by ',' + "]", e.g. "[2:i:1,i:2]".
//  7. Anything else (maps, funcs, chans, unsafe.Pointer, alone or inside the above) is an error
//     wrapping ErrUnsupported, as is nesting deeper than 64 levels, which in practice means a
//     pointer cycle.
//
// Details of rules 3 to 6:
//   - A pointer type uses rules 4 and 5 only when its element type would use none of rules 2 to
//     5 itself: *time.Time is "*T:...", a pointer to a type with value-receiver methods is
//     "*m..." or "*S...", and a pointer to a basic kind is "*" + the basic encoding. Methods
//     with pointer receivers are used through the pointer.
//   - Methods cannot be called on values read through an unexported struct field, so below an
//     unexported field every value is encoded by rules 1, 2, 6 and 7 alone: an unexported
//     time.Time field is encoded as the struct it is (its wall clock, monotonic reading and
//     Location pointer), and an unexported field whose type has a String method is encoded
//     by its kind. Prefer exported fields, or basic types, for arguments.
//   - Panics in MarshalText and String are not recovered.
//
// # Injectivity
//
// Every encoding ends where it can be told to end: strings and byte slices carry their length,
// numbers and times are written without ',', ']' or '}', and composites are bracketed. So the
// key can be parsed back into the sequence of encodings, and two argument lists with the same
// key hold equal values (as reflect.DeepEqual compares them), with these deliberate exceptions,
// which the users of a cache should know:
//   - Types are not recorded beyond their kind: a named type and its underlying type (MyID(1)
//     and int(1)), and structs with the same field kinds, encode alike. A function's parameters
//     have fixed types, so this matters only for arguments of interface type.
//   - A nil []byte and an empty one both encode as "y0:", as strings do.
//   - Every NaN encodes as "NaN", whatever its payload (NaN is never equal to itself anyway);
//     0 and -0 differ ("0", "-0") although they compare equal.
//   - Times are compared as instants: the Location and monotonic reading are dropped.
//   - Rules 4 and 5 are only as injective as the methods: a String method that omits a field,
//     or a struct embedding time.Time (which promotes its MarshalText), loses information.
//
// # Manglers
//
// Keys may contain any bytes, including spaces and control characters inside string
// arguments, and can be long. Backends with a restricted key alphabet or length (Memcached:
// 250 bytes, no spaces or control characters) should mangle keys, for example with SHA1 or
// LengthConditional(250, SHA1) when keys are known to be clean.
package keys
