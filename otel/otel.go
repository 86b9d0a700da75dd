// Package dogpileotel records the statistics of dogpile regions (region.Stats) as OpenTelemetry
// metrics. It is a module of its own, github.com/dogpile-go/dogpile/otel, so that programs that
// do not use OpenTelemetry never download it.
//
//	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
//	reg, err := dogpileotel.Register(provider.Meter("myapp"), usersCache, sessionsCache)
//	defer reg.Unregister()
//
// Every metric is an observable counter read from Region.Stats at each collection, with the
// attribute dogpile.region set to the region's name: the counts since the region was made, so
// an exporter computes rates from them as from any cumulative counter. Times are in seconds.
package dogpileotel

import (
	"context"
	"errors"

	"github.com/dogpile-go/dogpile/region"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// RegionKey is the attribute that names the region of each measurement.
const RegionKey = attribute.Key("dogpile.region")

// KindKey is the attribute that tells the kinds of dogpile.cache.errors apart: read, write,
// lock, malformed, encode, creator.
const KindKey = attribute.Key("dogpile.error.kind")

type counter struct {
	name, desc string
	get        func(region.Stats) int64
}

var counts = []counter{
	{"dogpile.cache.hits", "Reads answered with a fresh value.", func(s region.Stats) int64 { return int64(s.Hits) }},
	{"dogpile.cache.negative_hits", "Reads answered with a cached \"not found\".", func(s region.Stats) int64 { return int64(s.NegativeHits) }},
	{"dogpile.cache.misses", "Reads that found no usable value.", func(s region.Stats) int64 { return int64(s.Misses) }},
	{"dogpile.cache.expired", "Reads that found an expired value or one due for an early refresh.", func(s region.Stats) int64 { return int64(s.Expired) }},
	{"dogpile.cache.stale", "Calls answered with an expired value while another caller regenerates it.", func(s region.Stats) int64 { return int64(s.Stale) }},
	{"dogpile.cache.early_refreshes", "Regenerations started early (XFetch).", func(s region.Stats) int64 { return int64(s.EarlyRefreshes) }},
	{"dogpile.cache.creations", "Calls of creators.", func(s region.Stats) int64 { return int64(s.Creations) }},
	{"dogpile.cache.creation_errors", "Calls of creators that failed or panicked.", func(s region.Stats) int64 { return int64(s.CreationErrors) }},
	{"dogpile.cache.waits", "Calls that waited for a creation another caller led.", func(s region.Stats) int64 { return int64(s.Waits) }},
	{"dogpile.cache.background_refreshes.scheduled", "Regenerations handed to background workers.", func(s region.Stats) int64 { return int64(s.Background.Scheduled) }},
	{"dogpile.cache.background_refreshes.run", "Background regenerations that called their creator.", func(s region.Stats) int64 { return int64(s.Background.Run) }},
	{"dogpile.cache.background_refreshes.skipped", "Background regenerations not scheduled, every worker busy.", func(s region.Stats) int64 { return int64(s.Background.Skipped) }},
	{"dogpile.cache.stale_on_error", "Calls served an expired value because its regeneration failed.", func(s region.Stats) int64 { return int64(s.StaleOnError) }},
	{"dogpile.cache.skipped", "Backend calls the circuit breaker kept from an unreachable backend.", func(s region.Stats) int64 { return int64(s.Skipped) }},
}

var durations = []struct {
	name, desc string
	get        func(region.Stats) float64
}{
	{"dogpile.cache.creation.time", "Total time spent in creators.", func(s region.Stats) float64 { return s.CreationTime.Seconds() }},
	{"dogpile.cache.wait.time", "Total time calls waited for another caller's creation.", func(s region.Stats) float64 { return s.WaitTime.Seconds() }},
}

var errorKinds = []struct {
	kind string
	get  func(region.ErrorStats) uint64
}{
	{"read", func(e region.ErrorStats) uint64 { return e.Read }},
	{"write", func(e region.ErrorStats) uint64 { return e.Write }},
	{"lock", func(e region.ErrorStats) uint64 { return e.Lock }},
	{"malformed", func(e region.ErrorStats) uint64 { return e.Malformed }},
	{"encode", func(e region.ErrorStats) uint64 { return e.Encode }},
	{"creator", func(e region.ErrorStats) uint64 { return e.Creator }},
}

// Register creates the metrics on meter and a callback that reads the Stats of regions at each
// collection. Unregister the returned registration to stop (the instruments stay, reporting
// nothing). It fails if meter refuses an instrument or regions is empty or holds a nil region.
func Register(meter metric.Meter, regions ...*region.Region) (metric.Registration, error) {
	if len(regions) == 0 {
		return nil, errors.New("dogpileotel: no regions")
	}
	for _, r := range regions {
		if r == nil {
			return nil, errors.New("dogpileotel: nil region")
		}
	}
	var insts []metric.Observable
	intCounters := make([]metric.Int64ObservableCounter, len(counts))
	for i, c := range counts {
		o, err := meter.Int64ObservableCounter(c.name, metric.WithDescription(c.desc), metric.WithUnit("{call}"))
		if err != nil {
			return nil, err
		}
		intCounters[i] = o
		insts = append(insts, o)
	}
	timeCounters := make([]metric.Float64ObservableCounter, len(durations))
	for i, d := range durations {
		o, err := meter.Float64ObservableCounter(d.name, metric.WithDescription(d.desc), metric.WithUnit("s"))
		if err != nil {
			return nil, err
		}
		timeCounters[i] = o
		insts = append(insts, o)
	}
	errs, err := meter.Int64ObservableCounter("dogpile.cache.errors",
		metric.WithDescription("Errors the region reported, by kind."), metric.WithUnit("{error}"))
	if err != nil {
		return nil, err
	}
	insts = append(insts, errs)

	attrs := make([]metric.MeasurementOption, len(regions))
	kinds := make([][]metric.MeasurementOption, len(regions))
	for i, r := range regions {
		attrs[i] = metric.WithAttributes(RegionKey.String(r.Name()))
		for _, k := range errorKinds {
			kinds[i] = append(kinds[i], metric.WithAttributes(RegionKey.String(r.Name()), KindKey.String(k.kind)))
		}
	}
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i, r := range regions {
			s := r.Stats()
			for j, c := range counts {
				o.ObserveInt64(intCounters[j], c.get(s), attrs[i])
			}
			for j, d := range durations {
				o.ObserveFloat64(timeCounters[j], d.get(s), attrs[i])
			}
			for j, k := range errorKinds {
				o.ObserveInt64(errs, int64(k.get(s.Errors)), kinds[i][j])
			}
		}
		return nil
	}, insts...)
}
