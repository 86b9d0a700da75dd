package keys_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dogpile-go/dogpile/keys"
)

func ExampleDefault() {
	key, err := keys.Default("users.Load", 42, "eu,west", []int{1, 2}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(key)
	// Output: users.Load|i:42,s7:eu,west,[2:i:1,i:2],n
}

func ExampleAppend() {
	buf := make([]byte, 0, 64)
	buf = append(buf, "users.Load"...)
	buf = append(buf, keys.Sep)
	buf, err := keys.Append(buf, int64(42)) // no allocation
	if err != nil {
		panic(err)
	}
	fmt.Println(string(buf))
	// Output: users.Load|i64:42
}

func ExampleEncoderFor() {
	type point struct {
		X, Y int
		Tag  string
	}
	enc, err := keys.EncoderFor[point]() // once, at construction
	if err != nil {
		panic(err)
	}
	buf := make([]byte, 0, 64)
	buf = append(buf, "shapes.Near"...)
	buf = append(buf, keys.Sep)
	buf, err = enc.Append(buf, point{X: 3, Y: -4, Tag: "a"}) // no allocation, no reflect
	if err != nil {
		panic(err)
	}
	fmt.Println(string(buf))

	_, err = keys.EncoderFor[map[string]int]()
	fmt.Println(errors.Is(err, keys.ErrUnsupported))
	// Output:
	// shapes.Near|{i:3,i:-4,s1:a}
	// true
}

func ExampleSHA1() {
	fmt.Println(keys.SHA1("abc"))
	// Output: a9993e364706816aba3e25717850c26c9cd0d89d
}

func ExampleAppendSHA1() {
	buf := make([]byte, 0, 64) // reused for every key
	for _, key := range []string{"users.Load|i:1", "users.Load|i:2"} {
		buf = append(buf[:0], "app:"...)
		buf = keys.AppendSHA1(buf, key) // no allocation: buf has room for 40 more bytes
		fmt.Println(string(buf))
	}
	// Output:
	// app:426922740de0c76ac239c54a0b9108c6f7a8d7f0
	// app:30f8f1c61e5f2d949b7a220548ca223e9b4b063b
}

func ExampleChain() {
	mangle := keys.Chain(keys.Prefix("app:"), strings.ToUpper)
	fmt.Println(mangle("users.Load|i:42"))
	// Output: APP:USERS.LOAD|I:42
}

func ExampleLengthConditional() {
	mangle := keys.LengthConditional(16, keys.SHA1)
	fmt.Println(mangle("short|i:1"))
	fmt.Println(mangle("a.much.longer.namespace|s5:hello"))
	// Output:
	// short|i:1
	// 442a6ecda3ed0d3ff7263210f22ccef059743be8
}
