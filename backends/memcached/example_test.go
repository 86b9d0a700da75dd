package memcached_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/region"
)

// New wraps a client the program owns; a region then uses memcached for its entries and its lock.
// (Not run by go test: it needs memcached on localhost:11211.)
func ExampleNew() {
	client := memcache.New("localhost:11211") // or several servers: the client picks one per key
	client.Timeout = 200 * time.Millisecond   // how long a call may wait for a server that is down

	users := region.New("users",
		region.WithExpiration(10*time.Minute), // when a value is stale: the region's business
		region.WithStorageTTL(time.Hour),      // how long memcached keeps it: longer, to serve stale values
		region.WithLockTimeout(30*time.Second))
	b := memcached.New(client, memcached.WithPrefix("myapp:"), memcached.WithMaxItemSize(2<<20)) // memcached -I 2m
	if err := users.Configure(b); err != nil {
		log.Fatal(err)
	}
	defer users.Close()

	view := region.NewView[string](users)
	name, err := view.GetOrCreate(context.Background(), "user:42", func(ctx context.Context) (string, error) {
		return "gopher", nil // the expensive query, run once across every process on a miss
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(name)
}
