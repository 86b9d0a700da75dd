package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	// Every backend of the library, so that any URL a program gives backends.Open works here.
	_ "github.com/dogpile-go/dogpile/backends/file"
	_ "github.com/dogpile-go/dogpile/backends/memcached"
	_ "github.com/dogpile-go/dogpile/backends/memory"
	_ "github.com/dogpile-go/dogpile/backends/null"
	_ "github.com/dogpile-go/dogpile/backends/redis"
)

func main() {
	quietRedis()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
