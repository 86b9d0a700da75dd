package redis_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/dogpile-go/dogpile/backends"
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

// Open reads the URL of one server, of a Cluster (seed nodes in the host and addr) and of a
// Sentinel setup (sentinels in the host and addr, the master by master_name). It does no I/O:
// the client connects at its first command.
func ExampleOpen() {
	for _, rawURL := range []string{
		"redis://:secret@cache:6379/0?prefix=myapp:",
		"redis+cluster://:secret@10.0.0.1:7000?addr=10.0.0.2:7000&addr=10.0.0.3:7000&prefix={myapp}:",
		"redis+sentinel://10.0.0.1:26379?master_name=mymaster&addr=10.0.0.2:26379&password=secret&prefix=myapp:",
	} {
		b, err := backends.Open(rawURL)
		if err != nil {
			log.Fatal(err)
		}
		rb := b.(*redis.Backend)
		fmt.Printf("%s\n  %T, partitioned: %v\n", backends.Redact(rawURL), rb.Client(), rb.Partitioned())
		_ = rb.Close()
	}
	// Output:
	// redis://xxxxx@cache:6379/0?prefix=myapp:
	//   *redis.Client, partitioned: false
	// redis+cluster://xxxxx@10.0.0.1:7000?addr=10.0.0.2:7000&addr=10.0.0.3:7000&prefix={myapp}:
	//   *redis.ClusterClient, partitioned: true
	// redis+sentinel://10.0.0.1:26379?master_name=mymaster&addr=10.0.0.2:26379&password=xxxxx&prefix=myapp:
	//   *redis.Client, partitioned: false
}
