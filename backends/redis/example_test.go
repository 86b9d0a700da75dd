package redis_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

// New wraps a client the program owns; a region then uses Redis for its entries and its lock.
// (Not run by go test: it needs a Redis on localhost:6379.)
func ExampleNew() {
	client := goredis.NewClient(&goredis.Options{Addr: "localhost:6379"})
	defer client.Close() // the caller owns the client; the backend's Close leaves it open

	users := region.New("users",
		region.WithExpiration(10*time.Minute), // when a value is stale: the region's business
		region.WithStorageTTL(time.Hour),      // how long Redis keeps it: longer, to serve stale values
		region.WithLockTimeout(30*time.Second))
	if err := users.Configure(redis.New(client, redis.WithPrefix("myapp:"))); err != nil {
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
