package dogpileprom_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	dogpileprom "github.com/dogpile-go/dogpile/prometheus"
	"github.com/dogpile-go/dogpile/region"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// A region's statistics served at /metrics. A server mounts the handler with
// http.Handle("/metrics", handler); here one request is answered in memory.
func Example() {
	users := region.New("users", region.WithExpiration(time.Minute))
	if err := users.Configure(memory.New()); err != nil {
		log.Fatal(err)
	}
	defer users.Close()
	names := region.NewView[string](users)
	for range 3 {
		_, err := names.GetOrCreate(context.Background(), "user:42", func(context.Context) (string, error) {
			return "Ada", nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}

	c, err := dogpileprom.NewCollector(users)
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	handler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		for _, name := range []string{"dogpile_hits_total", "dogpile_misses_total", "dogpile_creations_total"} {
			if strings.HasPrefix(line, name+"{") {
				fmt.Print(line)
			}
		}
	}
	// Output:
	// dogpile_creations_total{region="users"} 1
	// dogpile_hits_total{region="users"} 2
	// dogpile_misses_total{region="users"} 1
}
