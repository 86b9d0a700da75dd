package dogpileotel_test

import (
	"context"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	dogpileotel "github.com/dogpile-go/dogpile/otel"
	"github.com/dogpile-go/dogpile/region"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestRegister(t *testing.T) {
	ctx := context.Background()
	users := region.New("users", region.WithExpiration(time.Minute))
	if err := users.Configure(memory.New()); err != nil {
		t.Fatal(err)
	}
	defer users.Close()
	v := region.NewView[string](users)
	for range 3 {
		if _, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) { return "v", nil }); err != nil {
			t.Fatal(err)
		}
	}

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(ctx)
	reg, err := dogpileotel.Register(provider.Meter("test"), users)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					if r, _ := dp.Attributes.Value(dogpileotel.RegionKey); r != attribute.StringValue("users") {
						t.Errorf("%s: region attribute %v", m.Name, r)
					}
					if k, ok := dp.Attributes.Value(dogpileotel.KindKey); ok {
						got[m.Name+"/"+k.AsString()] = dp.Value
						continue
					}
					got[m.Name] = dp.Value
				}
				if !sum.IsMonotonic || sum.Temporality != metricdata.CumulativeTemporality {
					t.Errorf("%s: not a cumulative counter", m.Name)
				}
			}
		}
	}
	for name, want := range map[string]int64{
		"dogpile.cache.hits": 2, "dogpile.cache.misses": 1, "dogpile.cache.creations": 1,
		"dogpile.cache.errors/read": 0, "dogpile.cache.stale": 0, "dogpile.cache.skipped": 0,
		"dogpile.cache.background_refreshes.scheduled": 0, "dogpile.cache.background_refreshes.run": 0,
		"dogpile.cache.background_refreshes.skipped": 0,
	} {
		if g, ok := got[name]; !ok || g != want {
			t.Errorf("%s = %d (recorded: %v), want %d", name, g, ok, want)
		}
	}
	if _, err := dogpileotel.Register(provider.Meter("test")); err == nil {
		t.Error("Register of no regions: no error")
	}
}
