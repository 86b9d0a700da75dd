package counting

import (
	"context"
	"strconv"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// Commands is a go-redis hook that records the commands a client sends: single commands and
// pipelines, each one round trip. A command is recorded as its name and argument count
// ("get/2", "evalsha/6").
type Commands struct {
	mu        sync.Mutex
	cmds      []string   // every single command; guarded by mu
	pipelines [][]string // the commands of every pipeline; guarded by mu
}

// RedisClient returns a client of the Redis at addr whose commands the returned Commands record,
// with its connection made (the handshake is not recorded). The client is closed when tb ends.
func RedisClient(tb testing.TB, addr string) (*goredis.Client, *Commands) {
	tb.Helper()
	client := goredis.NewClient(&goredis.Options{Addr: addr})
	tb.Cleanup(func() { _ = client.Close() })
	if err := client.Ping(context.Background()).Err(); err != nil {
		tb.Fatal(err)
	}
	c := new(Commands)
	client.AddHook(c)
	return client, c
}

// DialHook does not record dials.
func (c *Commands) DialHook(next goredis.DialHook) goredis.DialHook { return next }

// ProcessHook records a single command.
func (c *Commands) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		c.mu.Lock()
		c.cmds = append(c.cmds, describeCmd(cmd))
		c.mu.Unlock()
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook records a pipeline.
func (c *Commands) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		names := make([]string, len(cmds))
		for i, cmd := range cmds {
			names[i] = describeCmd(cmd)
		}
		c.mu.Lock()
		c.pipelines = append(c.pipelines, names)
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

func describeCmd(cmd goredis.Cmder) string {
	return cmd.Name() + "/" + strconv.Itoa(len(cmd.Args()))
}

// Take returns what was recorded since the last Take and forgets it.
func (c *Commands) Take() (cmds []string, pipelines [][]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmds, pipelines = c.cmds, c.pipelines
	c.cmds, c.pipelines = nil, nil
	return cmds, pipelines
}
