package keys

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// The struct types the Encoder tests use. Those named flat* are walks of their memory, which
// EncoderFor plans; the others take Append's path.
type (
	point struct {
		X, Y int
		Tag  string
	}
	flatKinds struct {
		B    bool
		I    int
		I8   int8
		I16  int16
		I32  int32
		I64  int64
		U    uint
		U8   uint8
		U16  uint16
		U32  uint32
		U64  uint64
		Up   uintptr
		F32  float32
		F64  float64
		C64  complex64
		C128 complex128
		S    string
		Y    []byte
		MB   myBytes
		Mb   []myByte
	}
	// flatNamed has basic kinds with String and MarshalText methods, which their kind overrides.
	flatNamed struct {
		C  color
		MI myInt
		MS myString
		MF myFloat
		c  color
	}
	flatTime struct {
		When  time.Time
		N     int
		Times [2]time.Time
	}
	// Inner is exported so that a struct can embed it under an exported name.
	Inner struct {
		N int
		s string
	}
	flatNested struct {
		P  pair
		In struct {
			A [2]pair
			b bool
		}
		Arr   [3]int8
		Empty struct{}
		Zero  [0]int
		Grid  [2][3]uint16
		inner Inner
	}
	flatEmbedded struct {
		Inner
		pair
		Tail string
	}
	// flatUnexportedMethods holds, in unexported fields, types whose methods AppendAny cannot
	// call there: it encodes them by their fields.
	flatUnexportedMethods struct {
		l   label
		ls  [2]label
		tri triple
		Pt  ptrText // only *ptrText has MarshalText
	}
	flatBlank struct {
		_ int32
		N int32
	}

	// triple is an array with a String method.
	triple [3]int

	withLabel        struct{ L label }
	withLabels       struct{ Ls [2]label }
	withTriple       struct{ T triple }
	withHiddenTime   struct{ when time.Time }
	embedsTime       struct{ time.Time } // promotes MarshalText
	withPtr          struct{ P *int }
	withAny          struct{ A any }
	withSlice        struct{ S []string }
	hiddenTimeInList struct{ ts [1]time.Time }
)

func (triple) String() string { return "triple" }

// The unexported fields above are set and read through reflect and unsafe only.
var _ = []any{
	flatNamed{c: red}, Inner{s: ""}, flatNested{inner: Inner{}},
	flatUnexportedMethods{l: label{}, ls: [2]label{}, tri: triple{}},
	withHiddenTime{when: instant}, hiddenTimeInList{ts: [1]time.Time{}},
}

// encoderCase is one type the Encoder tests use: whether EncoderFor must plan it, whether it
// does, and a check that Encoder.Append and AppendAny agree on a value filled from a reader.
type encoderCase struct {
	typ     reflect.Type
	plans   bool
	planned func() bool
	same    func(t *testing.T, r *reader)
}

func encoderCaseOf[A any](plans bool) encoderCase {
	return encoderCase{
		typ:   reflect.TypeFor[A](),
		plans: plans,
		planned: func() bool {
			e, err := EncoderFor[A]()
			return err == nil && e.plan != nil
		},
		same: sameEncoding[A],
	}
}

var encoderCases = []encoderCase{
	encoderCaseOf[point](true),
	encoderCaseOf[pair](true),
	encoderCaseOf[flatKinds](true),
	encoderCaseOf[flatNamed](true),
	encoderCaseOf[flatTime](true),
	encoderCaseOf[flatNested](true),
	encoderCaseOf[flatEmbedded](true),
	encoderCaseOf[flatUnexportedMethods](true),
	encoderCaseOf[flatBlank](true),
	encoderCaseOf[struct{}](true),
	encoderCaseOf[[3]pair](true),
	encoderCaseOf[[2][]byte](true),
	encoderCaseOf[struct{ l withLabel }](true), // the label is reached through an unexported field
	encoderCaseOf[int](false),
	encoderCaseOf[time.Time](false),
	encoderCaseOf[label](false), // a String method of its own
	encoderCaseOf[triple](false),
	encoderCaseOf[withLabel](false),
	encoderCaseOf[withLabels](false),
	encoderCaseOf[withTriple](false),
	encoderCaseOf[withHiddenTime](false), // its *time.Location is a pointer
	encoderCaseOf[hiddenTimeInList](false),
	encoderCaseOf[embedsTime](false),
	encoderCaseOf[withUnexported](false),
	encoderCaseOf[withPtr](false),
	encoderCaseOf[withAny](false),
	encoderCaseOf[withSlice](false),
	encoderCaseOf[[]pair](false),
}

// sameEncoding fills a value of type A from r, encodes it with its Encoder and with AppendAny,
// and fails unless the two agree, on the bytes and on the error (a MarshalText method may fail).
func sameEncoding[A any](t *testing.T, r *reader) {
	t.Helper()
	e, err := EncoderFor[A]()
	if err != nil {
		t.Fatalf("EncoderFor[%v]: %v", reflect.TypeFor[A](), err)
	}
	var a A
	fill(reflect.ValueOf(&a).Elem(), r)
	prefix := []byte("ns|x,")
	got, err := e.Append(prefix, a)
	want, errAny := AppendAny(prefix, a)
	if string(got) != string(want) || fmt.Sprint(err) != fmt.Sprint(errAny) {
		t.Fatalf("%T %+v: Encoder.Append = %q, %v; AppendAny = %q, %v", a, a, got, err, want, errAny)
	}
}

// fill sets v, exported or not, from r: the fuzz input decides every number, length and nil.
func fill(v reflect.Value, r *reader) {
	if !v.CanSet() {
		v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
	}
	if v.Type() == timeType {
		locs := []*time.Location{time.UTC, time.Local, zone, time.FixedZone("", -90*60)}
		tm := time.Unix(int64(r.uint())%(1<<40), int64(r.uint()%1e9)).In(locs[r.byte()%4])
		v.Set(reflect.ValueOf(tm))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(r.byte()&1 == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(r.uint()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(r.uint())
	case reflect.Float32, reflect.Float64:
		v.SetFloat(math.Float64frombits(r.uint()))
	case reflect.Complex64, reflect.Complex128:
		v.SetComplex(complex(math.Float64frombits(r.uint()), math.Float64frombits(r.uint())))
	case reflect.String:
		v.SetString(string(r.bytes()))
	case reflect.Slice:
		n := r.byte()
		if n%4 == 0 {
			return // nil
		}
		v.Set(reflect.MakeSlice(v.Type(), int(n%4)-1, int(n%4)-1))
		for i := range v.Len() {
			fill(v.Index(i), r)
		}
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), r)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), r)
		}
	case reflect.Pointer:
		if r.byte()&1 == 1 {
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem(), r)
		}
	case reflect.Interface:
		if r.byte()&1 == 1 {
			v.Set(reflect.ValueOf(int(r.uint())))
		}
	}
}

func TestEncoderPlansFlatStructsAndFallsBackOtherwise(t *testing.T) {
	for _, c := range encoderCases {
		if got := c.planned(); got != c.plans {
			t.Errorf("EncoderFor[%v] planned = %v, want %v", c.typ, got, c.plans)
		}
	}
}

func TestEncoderForRejectsWhatCheckRejects(t *testing.T) {
	if _, err := EncoderFor[map[string]int](); !errors.Is(err, ErrUnsupported) {
		t.Errorf("EncoderFor[map[string]int] error = %v, want ErrUnsupported", err)
	}
	if _, err := EncoderFor[hidesFunc](); !errors.Is(err, ErrUnsupported) {
		t.Errorf("EncoderFor[hidesFunc] error = %v, want ErrUnsupported", err)
	}
	if _, err := EncoderFor[stringerMap](); err != nil {
		t.Errorf("EncoderFor[stringerMap] error = %v, want nil: its String method encodes it", err)
	}
}

type hidesFunc struct {
	N int
	f func()
}

var _ = hidesFunc{}.f

func TestZeroEncoderEncodesAsAppend(t *testing.T) {
	var e Encoder[point]
	got, err := e.Append(nil, point{1, 2, "t"})
	if err != nil || string(got) != "{i:1,i:2,s1:t}" {
		t.Errorf("zero Encoder.Append = %q, %v, want {i:1,i:2,s1:t}", got, err)
	}
}

// TestEncoderDoesNotPlanPastMaxDepth checks that a type nested deeper than AppendAny follows
// is left to AppendAny, which reports it.
func TestEncoderDoesNotPlanPastMaxDepth(t *testing.T) {
	deep := reflect.TypeFor[int]()
	for range maxDepth + 1 {
		deep = reflect.ArrayOf(1, deep)
	}
	if planFor(deep) != nil {
		t.Errorf("planFor planned %d nested arrays", maxDepth+1)
	}
	if _, err := AppendAny(nil, reflect.New(deep).Elem().Interface()); !errors.Is(err, ErrUnsupported) {
		t.Errorf("AppendAny of %d nested arrays: error = %v, want ErrUnsupported", maxDepth+1, err)
	}
	if planFor(deep.Elem()) == nil {
		t.Errorf("planFor did not plan %d nested arrays", maxDepth)
	}
}

func TestEncoderAppendAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 256)
	pe, _ := EncoderFor[point]()
	te, _ := EncoderFor[flatTime]()
	ne, _ := EncoderFor[flatNested]()
	ie, _ := EncoderFor[int64]()
	p := point{X: 12, Y: -7, Tag: "some tag"}
	tm := flatTime{When: instant.In(zone), N: 3}
	n := flatNested{P: pair{"a", 1}, Arr: [3]int8{1, 2, 3}}
	allocs := map[string]func(){
		"point":      func() { buf, _ = pe.Append(buf[:0], p) },
		"flatTime":   func() { buf, _ = te.Append(buf[:0], tm) },
		"flatNested": func() { buf, _ = ne.Append(buf[:0], n) },
		"int64":      func() { buf, _ = ie.Append(buf[:0], 1234567) },
	}
	for name, f := range allocs {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations, want 0", name, n)
		}
	}
}

// BenchmarkStructKey measures the key of a small struct (two ints and a string) built by
// Append, which boxes it and walks it with reflect (1 alloc, ~130 ns on AMD EPYC), and by
// Encoder.Append, which reads it at planned offsets (0 allocs, ~50 ns).
func BenchmarkStructKey(b *testing.B) {
	p := point{X: 1234, Y: -56, Tag: "alice"}
	b.Run("via=Append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 64)
		for b.Loop() {
			buf, _ = Append(buf[:0], p)
		}
	})
	b.Run("via=Encoder", func(b *testing.B) {
		b.ReportAllocs()
		e, err := EncoderFor[point]()
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 0, 64)
		for b.Loop() {
			buf, _ = e.Append(buf[:0], p)
		}
	})
}
