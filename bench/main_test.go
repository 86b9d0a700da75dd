package bench

import (
	"os"
	"sync"
	"testing"

	"github.com/dogpile-go/dogpile/internal/testserver"
)

// redisServer is the redis-server the Redis scenarios share, started by the first of them the
// way the library's tests start theirs (internal/testserver), and stopped by TestMain.
var redisServer struct {
	once sync.Once
	srv  *testserver.Redis
	dir  string
	err  error
}

// redisAddr returns the address of the shared redis-server, starting it on first use.
func redisAddr(tb testing.TB) string {
	tb.Helper()
	r := &redisServer
	r.once.Do(func() {
		if r.dir, r.err = os.MkdirTemp("", "dogpile-bench-redis-"); r.err == nil {
			r.srv, r.err = testserver.NewRedis(r.dir)
		}
	})
	if r.err != nil {
		tb.Fatalf("redis: %v", r.err)
	}
	return r.srv.Addr
}

func TestMain(m *testing.M) {
	code := m.Run()
	if r := &redisServer; r.srv != nil {
		r.srv.Close()
	}
	if redisServer.dir != "" {
		_ = os.RemoveAll(redisServer.dir)
	}
	os.Exit(code)
}
