package dogpileprom

import (
	"errors"
	"fmt"

	"github.com/dogpile-go/dogpile/region"
	"github.com/prometheus/client_golang/prometheus"
)

// RegionLabel is the label that names the region of each metric.
const RegionLabel = "region"

// KindLabel is the label that tells the kinds of dogpile_errors_total apart: read, write, lock,
// malformed, encode, creator.
const KindLabel = "kind"

// counters are the metrics read from a Stats, one series per region.
var counters = []struct {
	name, help string
	get        func(region.Stats) float64
}{
	{"dogpile_hits_total", "Reads answered with a fresh value.", func(s region.Stats) float64 { return float64(s.Hits) }},
	{"dogpile_negative_hits_total", "Reads answered with a cached \"not found\".", func(s region.Stats) float64 { return float64(s.NegativeHits) }},
	{"dogpile_misses_total", "Reads that found no usable value, failed reads included.", func(s region.Stats) float64 { return float64(s.Misses) }},
	{"dogpile_expired_total", "Reads that found an expired value or one due for an early refresh.", func(s region.Stats) float64 { return float64(s.Expired) }},
	{"dogpile_stale_total", "Calls answered with an expired value while another caller regenerates it.", func(s region.Stats) float64 { return float64(s.Stale) }},
	{"dogpile_early_refreshes_total", "Regenerations a read started early (XFetch).", func(s region.Stats) float64 { return float64(s.EarlyRefreshes) }},
	{"dogpile_creations_total", "Calls of creators; a batch creator counts once a call.", func(s region.Stats) float64 { return float64(s.Creations) }},
	{"dogpile_creation_errors_total", "Calls of creators that failed or panicked.", func(s region.Stats) float64 { return float64(s.CreationErrors) }},
	{"dogpile_creation_seconds_total", "Total time spent in creators.", func(s region.Stats) float64 { return s.CreationTime.Seconds() }},
	{"dogpile_waits_total", "Calls that waited for a creation another caller led.", func(s region.Stats) float64 { return float64(s.Waits) }},
	{"dogpile_wait_seconds_total", "Total time calls waited for another caller's creation.", func(s region.Stats) float64 { return s.WaitTime.Seconds() }},
	{"dogpile_background_refreshes_scheduled_total", "Regenerations handed to background workers.", func(s region.Stats) float64 { return float64(s.Background.Scheduled) }},
	{"dogpile_background_refreshes_run_total", "Background regenerations that called their creator.", func(s region.Stats) float64 { return float64(s.Background.Run) }},
	{"dogpile_background_refreshes_skipped_total", "Background regenerations not scheduled, every worker busy.", func(s region.Stats) float64 { return float64(s.Background.Skipped) }},
	{"dogpile_stale_on_error_total", "Calls served an expired value because its regeneration failed.", func(s region.Stats) float64 { return float64(s.StaleOnError) }},
	{"dogpile_skipped_total", "Backend calls the circuit breaker kept from an unreachable backend.", func(s region.Stats) float64 { return float64(s.Skipped) }},
}

// errorKinds are the values of KindLabel on dogpile_errors_total, one per field of
// region.ErrorStats.
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

// Collector is a prometheus.Collector of the Stats of a fixed set of regions. Register it with
// a prometheus.Registerer; each scrape costs one Region.Stats call a region (a lock and a few
// atomic loads a view) and allocates the metrics it sends, 22 a region.
//
// The region label is a constant label of each region's metrics, so collectors of different
// regions register side by side in one registry, and registering a region twice fails there.
// A Collector is safe for concurrent use; it holds no state that a scrape changes.
type Collector struct {
	regions []*region.Region
	descs   [][]*prometheus.Desc // descs[i][j] is counters[j] of regions[i]
	errs    []*prometheus.Desc   // errs[i] is dogpile_errors_total of regions[i]
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector of the Stats of regions. It fails if regions is empty, holds
// a nil region or two regions of one name, or a name is not a valid label value (not UTF-8).
func NewCollector(regions ...*region.Region) (*Collector, error) {
	if len(regions) == 0 {
		return nil, errors.New("dogpileprom: no regions")
	}
	c := &Collector{
		regions: regions,
		descs:   make([][]*prometheus.Desc, len(regions)),
		errs:    make([]*prometheus.Desc, len(regions)),
	}
	names := make(map[string]bool, len(regions))
	for i, r := range regions {
		if r == nil {
			return nil, errors.New("dogpileprom: nil region")
		}
		if names[r.Name()] {
			return nil, fmt.Errorf("dogpileprom: two regions named %q", r.Name())
		}
		names[r.Name()] = true
		labels := prometheus.Labels{RegionLabel: r.Name()}
		for _, m := range counters {
			c.descs[i] = append(c.descs[i], prometheus.NewDesc(m.name, m.help, nil, labels))
		}
		c.errs[i] = prometheus.NewDesc("dogpile_errors_total",
			"Errors the region reported to its logger and error handler, by kind.", []string{KindLabel}, labels)
		if err := c.errs[i].Err(); err != nil {
			return nil, fmt.Errorf("dogpileprom: region %q: %w", r.Name(), err)
		}
	}
	return c, nil
}

// Describe sends the descriptors of every metric of every region.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for i := range c.regions {
		for _, d := range c.descs[i] {
			ch <- d
		}
		ch <- c.errs[i]
	}
}

// Collect reads the Stats of each region and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for i, r := range c.regions {
		c.collect(ch, i, r.Stats())
	}
}

// collect sends the metrics of s as those of c.regions[i].
func (c *Collector) collect(ch chan<- prometheus.Metric, i int, s region.Stats) {
	for j, m := range counters {
		ch <- prometheus.MustNewConstMetric(c.descs[i][j], prometheus.CounterValue, m.get(s))
	}
	for _, k := range errorKinds {
		ch <- prometheus.MustNewConstMetric(c.errs[i], prometheus.CounterValue, float64(k.get(s.Errors)), k.kind)
	}
}
