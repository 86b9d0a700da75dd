package main

import (
	"context"

	goredis "github.com/redis/go-redis/v9"
)

// quietRedis stops go-redis from logging (to stderr, through a global logger) the connection
// failures that the tool reports itself, with their context.
func quietRedis() { goredis.SetLogger(discard{}) }

type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}
