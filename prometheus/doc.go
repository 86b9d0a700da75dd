// Package dogpileprom exports the statistics of dogpile regions (region.Stats) as Prometheus
// metrics. It is a module of its own, github.com/dogpile-go/dogpile/prometheus, so that programs
// that do not use Prometheus never download its client.
//
//	c, err := dogpileprom.NewCollector(usersCache, sessionsCache)
//	if err != nil {
//		log.Fatal(err)
//	}
//	prometheus.MustRegister(c)
//	http.Handle("/metrics", promhttp.Handler())
//
// The Collector keeps no counts of its own: it reads Region.Stats at each scrape, so the regions'
// hot path does no work for it. Every metric is a counter of what the region has done since it was
// made, labelled region="<name>":
//
//	dogpile_hits_total                            reads answered with a fresh value
//	dogpile_negative_hits_total                   reads answered with a cached "not found"
//	dogpile_misses_total                          reads that found no usable value
//	dogpile_expired_total                         reads that found an expired value
//	dogpile_stale_total                           calls answered with an expired value during its regeneration
//	dogpile_early_refreshes_total                 regenerations started early
//	dogpile_creations_total                       calls of creators
//	dogpile_creation_errors_total                 calls of creators that failed or panicked
//	dogpile_creation_seconds_total                time spent in creators
//	dogpile_waits_total                           calls that waited for another caller's creation
//	dogpile_wait_seconds_total                    time spent waiting for another caller's creation
//	dogpile_background_refreshes_scheduled_total  regenerations handed to background workers
//	dogpile_background_refreshes_run_total        scheduled regenerations that called their creator
//	dogpile_background_refreshes_skipped_total    regenerations not scheduled, every worker busy
//	dogpile_stale_on_error_total                  calls served an expired value because its regeneration failed
//	dogpile_skipped_total                         backend calls the circuit breaker kept from the backend
//	dogpile_errors_total{kind}                    errors the region reported, by kind: read, write, lock,
//	                                              malformed, encode, creator
//
// scheduled - run counts the scheduled regenerations that found another process regenerating the
// key (see region.BackgroundStats).
//
// Region.Stats holds totals, not distributions, so the times are counters of seconds, not
// histograms: rate(dogpile_creation_seconds_total[5m]) / rate(dogpile_creations_total[5m]) is
// the mean creation time over the window; percentiles are not available.
//
// There is no hit-ratio gauge. A ratio of totals since the region was made says little about
// the last minutes, and ratios cannot be summed across regions or processes; the counters give
// it over any window and any aggregation. Hits, negative hits, misses and expired reads add up
// to every read, so the share of reads answered with a fresh value is
//
//	sum by (region) (rate(dogpile_hits_total[5m]))
//	/
//	sum by (region) (
//	    rate(dogpile_hits_total[5m]) + rate(dogpile_negative_hits_total[5m])
//	  + rate(dogpile_misses_total[5m]) + rate(dogpile_expired_total[5m])
//	)
//
// (add the negative hits to the numerator to count a cached "not found" as a hit).
package dogpileprom
