package memory_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
)

func ExampleNew() {
	b := memory.New(memory.WithMaxEntries(10_000))
	defer b.Close()
	ctx := context.Background()

	// Bytes, as every backend stores them: an entry envelope around the codec's payload.
	entry := backends.EncodeEntry(backends.Entry{Created: time.Now().UnixNano(), Payload: []byte(`"hello"`)})
	if err := b.Set(ctx, "greeting", entry, time.Hour); err != nil {
		log.Fatal(err)
	}
	stored, err := b.Get(ctx, "greeting")
	if err != nil {
		log.Fatal(err)
	}
	e, err := backends.DecodeEntry(stored)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bytes: %s\n", e.Payload)

	// Go values, as regions store them in this backend: no encoding, no allocation on a hit.
	type user struct{ Name string }
	if err := b.SetValue(ctx, "user:1", backends.Item{Value: &user{Name: "gopher"}, Created: time.Now().UnixNano()}, time.Hour); err != nil {
		log.Fatal(err)
	}
	item, err := b.GetValue(ctx, "user:1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("value: %s\n", item.Value.(*user).Name)

	_, err = b.Get(ctx, "absent")
	fmt.Println(err)
	// Output:
	// bytes: "hello"
	// value: gopher
	// memory: backends: not found
}
