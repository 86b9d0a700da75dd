package keys

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzNoCollision builds two argument lists from fuzz input and checks that equal keys mean
// equal arguments (reflect.DeepEqual). The lists use types that share no encoding with one
// another (see the package documentation's exceptions), so the implication must hold exactly.
// Each key must also parse back into its arguments.
func FuzzNoCollision(f *testing.F) {
	seeds := [][2][]any{
		{{"a b"}, {"a", "b"}},
		{{"a,b"}, {"a", "b"}},
		{{"", ""}, {""}},
		{{1}, {int64(1)}},
		{{uint(1)}, {"1"}},
		{{1.0}, {1}},
		{{pair{"a,i:1}", 1}}, {pair{"a", 1}, 1}},
		{{[]string{"a", "b"}}, {[]string{"a,b"}}},
		{{[]string{}}, {[]string{""}}},
		{{[]byte("x")}, {"x"}},
		{{true}, {int8(1)}},
		{{}, {""}},
	}
	for _, s := range seeds {
		f.Add(encodeArgs(s[0]), encodeArgs(s[1]))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		argsA := decodeArgs(a, false)
		argsB := decodeArgs(b, false)
		keyA := mustKey(t, argsA)
		keyB := mustKey(t, argsB)
		if keyA == keyB && !reflect.DeepEqual(argsA, argsB) {
			t.Fatalf("collision: %#v and %#v both give %q", argsA, argsB, keyA)
		}
		checkRoundTrip(t, keyA, argsA)
		checkRoundTrip(t, keyB, argsB)
	})
}

// FuzzRoundTrip checks, over a wider set of types including nils, nested []any and pointers,
// that a key parses back into its arguments (so no two different argument lists share it, up to
// the documented exceptions), that Default is deterministic, that Append agrees with AppendAny,
// and that SHA1 and AppendSHA1 of the key give crypto/sha1's digest in hex.
func FuzzRoundTrip(f *testing.F) {
	f.Add(encodeArgs([]any{"a", 1, nil, []string{"x,y"}}))
	f.Add([]byte{opAnyList, 3, opNil, opAnyList, 1, opStringList, 255, opStrPtr, 2, 'a', ','})
	f.Add([]byte{opFloat, 8, 0x80, 0, 0, 0, 0, 0, 0, 0}) // -0
	f.Fuzz(func(t *testing.T, data []byte) {
		args := decodeArgs(data, true)
		key := mustKey(t, args)
		if again := mustKey(t, args); again != key {
			t.Fatalf("Default(%#v) gave %q then %q", args, key, again)
		}
		checkRoundTrip(t, key, args)
		checkSHA1(t, key)
		for _, arg := range args {
			checkAppend(t, arg)
		}
	})
}

// FuzzEncoderMatchesAppendAny fills a value of each of the Encoder tests' types (flat structs
// EncoderFor plans, and types it leaves to Append) from fuzz input and checks that
// Encoder.Append writes the bytes AppendAny writes: the stored key format.
func FuzzEncoderMatchesAppendAny(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x08\xff\xff\xff\xff\xff\xff\xff\xff\x03abc\x01\x05"))
	f.Add([]byte("\x08\x7f\xf8\x00\x00\x00\x00\x00\x01\x08\x80\x00\x00\x00\x00\x00\x00\x00\x1fx,y}z"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range encoderCases {
			c.same(t, &reader{data})
		}
	})
}

func mustKey(t *testing.T, args []any) string {
	t.Helper()
	key, err := Default("ns", args...)
	if err != nil {
		t.Fatalf("Default(%#v): %v", args, err)
	}
	return key
}

func checkRoundTrip(t *testing.T, key string, args []any) {
	t.Helper()
	got, err := parseKey(key, "ns")
	if err != nil {
		t.Fatalf("parsing %q (from %#v): %v", key, args, err)
	}
	want := make([]any, len(args))
	for i, a := range args {
		want[i] = norm(a)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("key %q parses as %#v, want %#v", key, got, want)
	}
}

// checkSHA1 compares SHA1(key), and AppendSHA1 of key after existing bytes, with the hex of
// crypto/sha1's digest of key.
func checkSHA1(t *testing.T, key string) {
	t.Helper()
	sum := sha1.Sum([]byte(key))
	want := hex.EncodeToString(sum[:])
	if got := SHA1(key); got != want {
		t.Fatalf("SHA1(%q) = %q, want %q", key, got, want)
	}
	if got := AppendSHA1([]byte("app:"), key); string(got) != "app:"+want {
		t.Fatalf("AppendSHA1(%q, %q) = %q, want %q", "app:", key, got, "app:"+want)
	}
}

// checkAppend calls Append with arg's static type and compares with AppendAny.
func checkAppend(t *testing.T, arg any) {
	t.Helper()
	var fast []byte
	var err error
	switch v := arg.(type) {
	case string:
		fast, err = Append(nil, v)
	case int:
		fast, err = Append(nil, v)
	case int64:
		fast, err = Append(nil, v)
	case int8:
		fast, err = Append(nil, v)
	case uint:
		fast, err = Append(nil, v)
	case uint64:
		fast, err = Append(nil, v)
	case []byte:
		fast, err = Append(nil, v)
	case bool:
		fast, err = Append(nil, v)
	case float64:
		fast, err = Append(nil, v)
	case []string:
		fast, err = Append(nil, v)
	case pair:
		fast, err = Append(nil, v)
	case *string:
		fast, err = Append(nil, v)
	default:
		fast, err = Append(nil, arg)
	}
	slow, errSlow := AppendAny(nil, arg)
	if err != nil || errSlow != nil || string(fast) != string(slow) {
		t.Fatalf("%T %#v: Append = %q, %v; AppendAny = %q, %v", arg, arg, fast, err, slow, errSlow)
	}
}

// The fuzz input is a sequence of values, each an op byte followed by its operands.
const (
	opString = iota
	opInt
	opInt64
	opInt8
	opUint
	opUint64
	opBytes
	opBool
	opFloat
	opStringList // non-nil in the strict set; 255 as count means nil in the wide set
	opPair
	opStrPtr
	// Only in the wide set:
	opNil
	opIntList
	opAnyList
	numOps
)

type reader struct{ b []byte }

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// bytes reads a length byte and that many bytes (fewer at the end), as a non-nil slice.
func (r *reader) bytes() []byte {
	n := min(int(r.byte())%32, len(r.b))
	out := append([]byte{}, r.b[:n]...)
	r.b = r.b[n:]
	return out
}

// uint reads a length byte (0 to 8) and that many big-endian bytes.
func (r *reader) uint() uint64 {
	var x uint64
	for range r.byte() % 9 {
		x = x<<8 | uint64(r.byte())
	}
	return x
}

// decodeArgs turns fuzz bytes into an argument list, with at most 16 arguments. With wide
// false it uses only types whose encodings are disjoint; with wide true it adds nil, nil slices,
// []int and nested []any.
func decodeArgs(data []byte, wide bool) []any {
	r := &reader{data}
	args := []any{}
	for len(r.b) > 0 && len(args) < 16 {
		args = append(args, decodeValue(r, wide, 0))
	}
	return args
}

func decodeValue(r *reader, wide bool, depth int) any {
	o := int(r.byte())
	if wide {
		o %= numOps
	} else {
		o %= opNil
	}
	if depth > 3 && o >= opStringList {
		o = opString
	}
	switch o {
	case opString:
		return string(r.bytes())
	case opInt:
		return int(int64(r.uint()))
	case opInt64:
		return int64(r.uint())
	case opInt8:
		return int8(r.byte())
	case opUint:
		return uint(r.uint())
	case opUint64:
		return r.uint()
	case opBytes:
		return r.bytes()
	case opBool:
		return r.byte()&1 == 1
	case opFloat:
		f := math.Float64frombits(r.uint())
		if math.IsNaN(f) {
			f = math.Inf(-1) // NaN is never DeepEqual to itself.
		}
		return f
	case opStringList:
		n := r.byte()
		if wide && n == 255 {
			return []string(nil)
		}
		list := []string{}
		for range n % 5 {
			list = append(list, string(r.bytes()))
		}
		return list
	case opPair:
		return pair{string(r.bytes()), int(int64(r.uint()))}
	case opStrPtr:
		s := string(r.bytes())
		return &s
	case opNil:
		return nil
	case opIntList:
		n := r.byte()
		if n == 255 {
			return []int(nil)
		}
		list := []int{}
		for range n % 5 {
			list = append(list, int(int64(r.uint())))
		}
		return list
	case opAnyList:
		list := []any{}
		for range r.byte() % 5 {
			list = append(list, decodeValue(r, wide, depth+1))
		}
		return list
	}
	panic("unreachable")
}

// encodeArgs is the inverse of decodeArgs for the seed corpus.
func encodeArgs(args []any) []byte {
	var b []byte
	str := func(s string) { b = append(append(b, byte(len(s))), s...) }
	u := func(x uint64) {
		b = append(b, 8)
		for i := 7; i >= 0; i-- {
			b = append(b, byte(x>>(8*i)))
		}
	}
	for _, a := range args {
		switch v := a.(type) {
		case string:
			b = append(b, opString)
			str(v)
		case int:
			b = append(b, opInt)
			u(uint64(v))
		case int64:
			b = append(b, opInt64)
			u(uint64(v))
		case int8:
			b = append(b, opInt8, byte(v))
		case uint:
			b = append(b, opUint)
			u(uint64(v))
		case uint64:
			b = append(b, opUint64)
			u(v)
		case []byte:
			b = append(b, opBytes)
			str(string(v))
		case bool:
			b = append(b, opBool, 0)
			if v {
				b[len(b)-1] = 1
			}
		case float64:
			b = append(b, opFloat)
			u(math.Float64bits(v))
		case []string:
			b = append(b, opStringList, byte(len(v)))
			for _, s := range v {
				str(s)
			}
		case pair:
			b = append(b, opPair)
			str(v.A)
			u(uint64(v.B))
		case nil:
			b = append(b, opNil)
		default:
			panic(fmt.Sprintf("encodeArgs: %T", a))
		}
	}
	return b
}

// Parsed forms of composite encodings.
type (
	structNode []any
	ptrNode    struct{ V any }
)

// norm maps a value to what parseKey returns for its encoding: composites become []any,
// structNode or ptrNode, and nil slices and pointers become nil.
func norm(v any) any {
	if v == nil {
		return nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return v
		}
		if rv.IsNil() {
			return nil
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = norm(rv.Index(i).Interface())
		}
		return out
	case reflect.Struct:
		out := make(structNode, rv.NumField())
		for i := range out {
			out[i] = norm(rv.Field(i).Interface())
		}
		return out
	case reflect.Pointer:
		if rv.IsNil() {
			return nil
		}
		return ptrNode{norm(rv.Elem().Interface())}
	}
	return v
}

// parseKey is an independent, strict reader of the key format for the types the fuzz targets
// use. It fails on anything it does not expect, including trailing bytes.
func parseKey(key, ns string) (args []any, err error) {
	rest, ok := strings.CutPrefix(key, ns+string(Sep))
	if !ok {
		return nil, fmt.Errorf("no %q prefix", ns+string(Sep))
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	p := &parser{s: rest}
	args = []any{}
	for p.s != "" {
		if len(args) > 0 {
			p.expect(',')
		}
		args = append(args, p.value())
	}
	return args, nil
}

type parser struct{ s string }

func (p *parser) next() byte {
	if p.s == "" {
		panic("unexpected end")
	}
	c := p.s[0]
	p.s = p.s[1:]
	return c
}

func (p *parser) expect(c byte) {
	if got := p.next(); got != c {
		panic(fmt.Sprintf("got %q, want %q", got, c))
	}
}

// upTo returns the text before the first byte in stops (or the end) and consumes it.
func (p *parser) upTo(stops string) string {
	i := strings.IndexAny(p.s, stops)
	if i < 0 {
		i = len(p.s)
	}
	tok := p.s[:i]
	p.s = p.s[i:]
	return tok
}

func (p *parser) length() int {
	n, err := strconv.Atoi(p.upTo(":"))
	if err != nil || n < 0 || n > len(p.s) {
		panic(fmt.Sprintf("bad length: %v", err))
	}
	p.expect(':')
	return n
}

func (p *parser) value() any {
	switch c := p.next(); c {
	case 'n':
		return nil
	case 's', 'y':
		n := p.length()
		s := p.s[:n]
		p.s = p.s[n:]
		if c == 'y' {
			return []byte(s)
		}
		return s
	case 'b':
		switch p.next() {
		case '1':
			return true
		case '0':
			return false
		}
		panic("bad bool")
	case 'i', 'u', 'f':
		tag := string(c) + p.upTo(":")
		p.expect(':')
		num := p.upTo(",]}")
		switch tag {
		case "i", "i8", "i64":
			bits := map[string]int{"i": 64, "i8": 8, "i64": 64}[tag]
			x, err := strconv.ParseInt(num, 10, bits)
			if err != nil || strconv.FormatInt(x, 10) != num {
				panic(fmt.Sprintf("bad %s %q", tag, num))
			}
			switch tag {
			case "i":
				return int(x)
			case "i8":
				return int8(x)
			}
			return x
		case "u", "u64":
			x, err := strconv.ParseUint(num, 10, 64)
			if err != nil || strconv.FormatUint(x, 10) != num {
				panic(fmt.Sprintf("bad %s %q", tag, num))
			}
			if tag == "u" {
				return uint(x)
			}
			return x
		case "f64":
			x, err := strconv.ParseFloat(num, 64)
			if err != nil || strconv.FormatFloat(x, 'g', -1, 64) != num {
				panic(fmt.Sprintf("bad f64 %q", num))
			}
			return x
		}
		panic("unknown tag " + tag)
	case '[':
		n, err := strconv.Atoi(p.upTo(":"))
		if err != nil || n < 0 {
			panic("bad list length")
		}
		p.expect(':')
		list := make([]any, n)
		for i := range list {
			if i > 0 {
				p.expect(',')
			}
			list[i] = p.value()
		}
		p.expect(']')
		return list
	case '{':
		fields := structNode{}
		if p.s != "" && p.s[0] == '}' {
			p.next()
			return fields
		}
		for {
			fields = append(fields, p.value())
			switch p.next() {
			case '}':
				return fields
			case ',':
			default:
				panic("bad struct")
			}
		}
	case '*':
		return ptrNode{p.value()}
	}
	panic("unknown encoding")
}
