package redis_test

import (
	"net"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// TestOpenCanFailFast: a URL can make a down Redis fail at once. go-redis's ParseURL does not know
// dialer_retries, and without it every command against a refused port made 5 dial attempts 100ms
// apart (about 1.6s per memo call with Redis down). With one dial attempt and a retry backoff of
// 2s, a Get that returns within 1s made no retry.
func TestOpenCanFailFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: connection refused

	b, err := backends.Open("redis://" + addr + "/0?dialer_retries=1&dialer_retry_timeout=2s&max_retries=-1")
	if err != nil {
		t.Fatal(err)
	}
	defer b.(interface{ Close() error }).Close()
	start := time.Now()
	_, err = b.Get(t.Context(), "k")
	if elapsed := time.Since(start); err == nil || elapsed > time.Second {
		t.Fatalf("Get with Redis down = %v after %v; want an error from a single dial", err, elapsed.Round(time.Millisecond))
	}
	for _, bad := range []string{"dialer_retries=0", "dialer_retries=x", "dialer_retry_timeout=0s", "dialer_retry_timeout=x"} {
		if _, err := backends.Open("redis://" + addr + "/0?" + bad); err == nil {
			t.Errorf("Open accepted %s", bad)
		}
	}
}
