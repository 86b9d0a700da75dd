package httpcache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/httpcache"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

// envPurge carries "redis address" to a child process of TestPurgesReachOtherProcessesLocalCaches.
const envPurge = "HTTPCACHE_PURGE_CHILD"

// purgeHost is the host of every request to the purge children: one site, two instances.
const purgeHost = "www.example.com"

// maybePurgeChild serves a cached page on Redis with a local cache in front, and exits, if this
// process is a child of the purge test: it prints its server's URL, counts the handler's runs in
// Redis (INCR handler_runs), tags the pages under /news/ "news", purges on GET
// /_purge?op=url|tag|all&arg=..., and stops when its standard input closes. Its local cache and
// its shared invalidations keep entries a minute and poll once a minute: anything that reaches it
// sooner came by Redis pub/sub.
func maybePurgeChild() {
	addr := os.Getenv(envPurge)
	if addr == "" {
		return
	}
	client := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true})
	pages := region.New("pages", region.WithLocalCache(memory.New(), time.Minute),
		region.WithSharedInvalidation(time.Minute))
	if err := pages.Configure(redis.New(client, redis.WithPrefix("purge:"))); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	cache := httpcache.New(pages)
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := client.Incr(r.Context(), "handler_runs").Result()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/news/") {
			w.Header().Set("X-Cache-Tags", "news")
		}
		fmt.Fprintf(w, "run %d by %d", n, os.Getpid())
	})
	mux := http.NewServeMux()
	mux.Handle("/", cache.Handler(page))
	mux.HandleFunc("/_purge", func(w http.ResponseWriter, r *http.Request) {
		arg := r.FormValue("arg")
		var err error
		switch r.FormValue("op") {
		case "url":
			err = cache.Purge(r.Context(), arg)
		case "tag":
			err = cache.PurgeTag(r.Context(), arg)
		case "all":
			err = cache.PurgeAll(r.Context())
		default:
			err = fmt.Errorf("unknown op %q", r.FormValue("op"))
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(mux)
	fmt.Println(srv.URL)
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Close()
	_ = pages.Close()
	_ = client.Close()
	os.Exit(0)
}

func TestPurgesReachOtherProcessesLocalCaches(t *testing.T) {
	srv := testserver.StartRedis(t)
	a, b := startChild(t, envPurge, srv.Addr), startChild(t, envPurge, srv.Addr)
	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	defer rc.Close()
	ctx := context.Background()

	fetch := func(base, path string) result {
		t.Helper()
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = purgeHost
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return result{resp.StatusCode, resp.Header, string(body)}
	}
	// reads counts the reads Redis has served (GET and MGET), from INFO commandstats.
	reads := func() int {
		t.Helper()
		info, err := rc.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, line := range strings.Split(info, "\r\n") {
			if !strings.HasPrefix(line, "cmdstat_get:calls=") && !strings.HasPrefix(line, "cmdstat_mget:calls=") {
				continue
			}
			calls, _, _ := strings.Cut(line[strings.Index(line, "=")+1:], ",")
			c, err := strconv.Atoi(calls)
			if err != nil {
				t.Fatalf("commandstats line %q: %v", line, err)
			}
			n += c
		}
		return n
	}
	// fromLocalTiers makes both processes hold path in their local caches and returns its body:
	// both answer it, the same, HIT, and without a read of Redis. A creation's announcement
	// arriving after the other process read the entry drops it there, so it may take a round
	// more.
	fromLocalTiers := func(path string) string {
		t.Helper()
		for range 50 {
			fetch(a, path)
			fetch(b, path)
			before := reads()
			ra, rb := fetch(a, path), fetch(b, path)
			if reads() == before && ra.body == rb.body &&
				ra.header.Get("X-Cache") == "HIT" && rb.header.Get("X-Cache") == "HIT" {
				return ra.body
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s: never served by both processes from their local caches", path)
		return ""
	}

	for _, tc := range []struct{ name, path, op, arg string }{
		{"Purge", "/page", "url", "http://" + purgeHost + "/page"},
		{"PurgeTag", "/news/1", "tag", "news"},
		{"PurgeAll", "/other", "all", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := fromLocalTiers(tc.path)
			start := time.Now()
			resp, err := http.Get(a + "/_purge?op=" + tc.op + "&arg=" + url.QueryEscape(tc.arg))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("purge: %s", resp.Status)
			}
			purged := time.Now()
			// The other process learns of the purge by pub/sub, after the purge returned: count
			// the old answers it gives meanwhile.
			var r result
			olds, sent := 0, time.Now()
			for r = fetch(b, tc.path); r.body == old; r = fetch(b, tc.path) {
				olds++
				if time.Since(purged) > 5*time.Second {
					t.Fatalf("the other process still serves %q 5s after the purge", old)
				}
				sent = time.Now()
			}
			reached := sent.Sub(purged) // at most: the request that got the new page was sent then
			t.Logf("%s took %v in one process; after it returned the other answered the old page %d time(s), "+
				"then the new one to a request sent %v after, in %v (its handler run included)",
				tc.name, purged.Sub(start).Round(time.Microsecond), olds, reached.Round(time.Microsecond),
				time.Since(sent).Round(time.Microsecond))
			if r.status != 200 || r.header.Get("X-Cache") != "MISS" || !strings.HasPrefix(r.body, "run ") {
				t.Errorf("the other process, after the purge: %d %q %q; want 200, MISS, a new run", r.status, r.header.Get("X-Cache"), r.body)
			}
			if reached > time.Second {
				t.Errorf("the purge reached the other process after %v; want well under a second (pub/sub, not the minute of the local cache)", reached)
			}
			if r := fetch(a, tc.path); r.body == old {
				t.Errorf("the purging process still serves %q", old)
			}
		})
	}
}
