package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/keys"
	"github.com/dogpile-go/dogpile/region"
)

// A program caches a user in a file backend under a mangled key; the tool, run later, reads the
// entry by the key the program used, then deletes it.
func Example() {
	dir, err := os.MkdirTemp("", "dogpile-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	url := "file://" + dir

	// The program: a region with keys.SHA1, on a clock of the example's own.
	created := time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC)
	cache := region.New("users", region.WithKeyMangler(keys.SHA1), region.WithClock(func() time.Time { return created }))
	b, err := backends.Open(url)
	if err != nil {
		panic(err)
	}
	if err := cache.Configure(b); err != nil {
		panic(err)
	}
	type User struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	if err := region.NewView[User](cache).Set(context.Background(), "users.Load|i64:42", User{42, "Ada"}); err != nil {
		panic(err)
	}
	_ = cache.Close()

	// The tool, four minutes later, given the key as the program's code writes it (memo's
	// namespace and an int64 argument) and then as stored:
	//	dogpile get -mangle sha1 file:///var/cache/app -fn users.Load -types int64 42
	//	dogpile delete -mangle sha1 file:///var/cache/app -raw 'users.Load|i64:42'
	tool := &cli{stdout: os.Stdout, stderr: os.Stdout, now: func() time.Time { return created.Add(4 * time.Minute) }}
	code := tool.run(context.Background(), []string{"get", "-mangle", "sha1", url, "-fn", "users.Load", "-types", "int64", "42"})
	fmt.Println("exit status", code)
	code = tool.run(context.Background(), []string{"delete", "-mangle", "sha1", url, "-raw", "users.Load|i64:42"})
	fmt.Println("exit status", code)
	// Output:
	// key:         users.Load|i64:42
	// stored as:   1c74cda34d4593358f7be1bdea182c1a661e6449
	// created:     2026-11-22T16:00:00Z (age 4m0s)
	// creation:    time unknown
	// size:        42 bytes (20-byte header, 22-byte payload)
	// flags:       none
	// format:      version 2
	// payload (JSON):
	// {
	//   "id": 42,
	//   "name": "Ada"
	// }
	// exit status 0
	// deleted "users.Load|i64:42" (stored as "1c74cda34d4593358f7be1bdea182c1a661e6449") (it existed)
	// not announced (no -region): processes with a local cache serve the old value until it ages out of it
	// exit status 0
}
