package backends_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/dogpile-go/dogpile/backends"
	_ "github.com/dogpile-go/dogpile/backends/memory" // registers "memory"
)

func ExampleOpen() {
	// The URL would come from a configuration file or the environment: memory:// in tests,
	// redis://... in production, with the same code.
	b, err := backends.Open("memory://?max_entries=1000")
	if err != nil {
		log.Fatal(err)
	}
	if c, ok := backends.As[io.Closer](b); ok {
		defer c.Close()
	}

	ctx := context.Background()
	entry := backends.EncodeEntry(backends.Entry{Created: 1, Payload: []byte(`"hello"`)})
	if err := b.Set(ctx, "greeting", entry, 0); err != nil {
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
	fmt.Printf("%s\n", e.Payload)

	_, err = backends.Open("nosuch://")
	fmt.Println(errors.Is(err, backends.ErrUnknownBackend))
	// Output:
	// "hello"
	// true
}
