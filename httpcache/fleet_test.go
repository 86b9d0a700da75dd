package httpcache_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/httpcache"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

// envFleet carries "redis address" to a child process of TestFleetRunsHandlerOnce.
const envFleet = "HTTPCACHE_FLEET_CHILD"

// maybeFleetChild serves a cached slow handler on Redis and exits, if this process is a child
// of the fleet test: it prints its server's URL, counts the handler's runs in Redis (INCR
// handler_runs), and stops when its standard input closes.
func maybeFleetChild() {
	addr := os.Getenv(envFleet)
	if addr == "" {
		return
	}
	client := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true})
	cache := region.New("pages", region.WithExpiration(time.Minute))
	if err := cache.Configure(redis.New(client, redis.WithPrefix("fleet:"))); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := client.Incr(r.Context(), "handler_runs").Result()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		time.Sleep(300 * time.Millisecond)
		fmt.Fprintf(w, "run %d by %d", n, os.Getpid())
	})
	srv := httptest.NewServer(httpcache.Handler(cache, page))
	fmt.Println(srv.URL)
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Close()
	_ = cache.Close()
	_ = client.Close()
	os.Exit(0)
}

func TestFleetRunsHandlerOnce(t *testing.T) {
	srv := testserver.StartRedis(t)
	urls := []string{startChild(t, envFleet, srv.Addr), startChild(t, envFleet, srv.Addr)}

	const requests = 500
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: requests}}
	defer client.CloseIdleConnections()
	bodies := make([]string, requests)
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			req, err := http.NewRequest("GET", urls[i%2]+"/page?b=2&a=1", nil)
			if err != nil {
				t.Error(err)
				return
			}
			req.Host = "www.example.com" // as behind a load balancer: one host, two instances
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies[i] = string(b)
		})
	}
	wg.Wait()
	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer rc.Close()
	runs, err := rc.Get(context.Background(), "handler_runs").Int()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests over 2 processes: the handler ran %d time(s)", requests, runs)
	if runs != 1 {
		t.Errorf("handler ran %d times; want 1", runs)
	}
	for _, b := range bodies {
		if b != bodies[0] || !strings.HasPrefix(b, "run 1 by ") {
			t.Fatalf("bodies differ: %q and %q", bodies[0], b)
		}
	}
}

// startChild runs this test binary again with env=value, so that TestMain makes it a child
// (maybeFleetChild, maybePurgeChild), and returns the URL the child prints. The child stops when
// t ends: its standard input closes.
func startChild(t *testing.T, env, value string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+value)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	return strings.TrimSpace(line)
}
