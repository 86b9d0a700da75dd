package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// key is one benchmark configuration, whose runs make a sample.
type key struct {
	bench string // without "Benchmark": "Hit", "Zipf", ...
	impl  string // the contender, from the impl=NAME sub-benchmark
	procs int    // GOMAXPROCS
}

// dataset holds every value a run measured.
type dataset struct {
	values map[key]map[string][]float64 // unit -> one value per run
	impls  map[string][]string          // bench -> contenders, in the order they ran
	procs  map[string][]int             // bench -> GOMAXPROCS values, in the order they ran
}

// load reads the raw output of every step that has some (a step added since the run has none).
func load(dir string) (*dataset, error) {
	d := &dataset{values: map[key]map[string][]float64{}, impls: map[string][]string{}, procs: map[string][]int{}}
	for _, s := range steps {
		file := filepath.Join(dir, s.name+".txt")
		f, err := os.Open(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a step added since the run: its scenario says it was not measured
		}
		if err != nil {
			return nil, err
		}
		r := benchfmt.NewReader(f, file)
		for r.Scan() {
			switch rec := r.Result().(type) {
			case *benchfmt.SyntaxError:
				f.Close()
				return nil, rec
			case *benchfmt.Result:
				d.add(rec)
			}
		}
		err = r.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *dataset) add(r *benchfmt.Result) {
	base, parts := r.Name.Parts()
	k := key{bench: strings.TrimPrefix(string(base), "Benchmark"), procs: 1}
	for _, p := range parts {
		switch s := string(p); {
		case strings.HasPrefix(s, "/impl="):
			k.impl = strings.TrimPrefix(s, "/impl=")
		case strings.HasPrefix(s, "-"):
			if n, err := strconv.Atoi(s[1:]); err == nil {
				k.procs = n
			}
		}
	}
	if k.impl == "" {
		return
	}
	if !slices.Contains(d.impls[k.bench], k.impl) {
		d.impls[k.bench] = append(d.impls[k.bench], k.impl)
	}
	if !slices.Contains(d.procs[k.bench], k.procs) {
		d.procs[k.bench] = append(d.procs[k.bench], k.procs)
	}
	m := d.values[k]
	if m == nil {
		m = map[string][]float64{}
		d.values[k] = m
	}
	for _, v := range r.Values {
		unit, val := v.Unit, v.Value
		if v.OrigUnit != "" { // benchfmt turns ns/op into sec/op; the report keeps what go test wrote
			unit, val = v.OrigUnit, v.OrigValue
		}
		m[unit] = append(m[unit], val)
	}
}

// stat is the summary of one sample: its median and the median's 95% confidence interval, as
// benchstat computes them.
type stat struct {
	sample  *benchmath.Sample
	summary benchmath.Summary
}

// get returns the sample of impl in bench at procs (0: the only GOMAXPROCS bench ran at) for
// unit, and false if there is none.
func (d *dataset) get(bench, impl string, procs int, unit string) (stat, bool) {
	if procs == 0 {
		ps := d.procs[bench]
		if len(ps) == 0 {
			return stat{}, false
		}
		procs = ps[0]
	}
	vals := d.values[key{bench, impl, procs}][unit]
	if len(vals) == 0 {
		return stat{}, false
	}
	s := benchmath.NewSample(vals, &benchmath.DefaultThresholds)
	return stat{s, benchmath.AssumeNothing.Summary(s, 0.95)}, true
}

// pairedRatio is the median, over the runs, of a's value in bench at procs (0: the only
// GOMAXPROCS) for unit over b's in the same run: each run of a step (one go test command)
// measures both, seconds apart, so the ratio of one run is not moved by a change of the
// machine's speed between runs, which moves both medians of a ratio of medians. It is false
// unless both were measured in every run.
func (d *dataset) pairedRatio(bench, a, b string, procs int, unit string) (float64, bool) {
	if procs == 0 {
		ps := d.procs[bench]
		if len(ps) == 0 {
			return 0, false
		}
		procs = ps[0]
	}
	va, vb := d.values[key{bench, a, procs}][unit], d.values[key{bench, b, procs}][unit]
	if len(va) == 0 || len(va) != len(vb) {
		return 0, false
	}
	r := make([]float64, 0, len(va))
	for i := range va {
		if vb[i] == 0 {
			return 0, false
		}
		r = append(r, va[i]/vb[i])
	}
	slices.Sort(r)
	n := len(r)
	if n%2 == 1 {
		return r[n/2], true
	}
	return (r[n/2-1] + r[n/2]) / 2, true
}

// differs reports whether two samples differ significantly (Mann-Whitney U test at benchstat's
// default alpha). Identical constant samples do not.
func differs(a, b stat) bool {
	c := benchmath.AssumeNothing.Compare(a.sample, b.sample)
	return !math.IsNaN(c.P) && c.P < c.Alpha
}

// ci is the confidence interval of s as benchstat prints it ("±3%"), or "" when it is ±0%.
func (s stat) ci() string {
	r := s.summary.PctRangeString()
	if r == "0%" {
		return ""
	}
	return "±" + r
}

// format writes v in unit the way the report shows it.
func format(v float64, unit string) string {
	switch unit {
	case "ns/op":
		return formatNs(v)
	case "p50-ms", "p99-ms", "max-ms":
		return formatNs(v * 1e6)
	case "B/op", "bytes/item":
		return fmt.Sprintf("%.0f B", v)
	case "ns/get":
		return formatNs(v)
	case "allocs/op":
		return fmt.Sprintf("%.0f", v)
	case "hit-ratio":
		return fmt.Sprintf("%.3f", v)
	case "warm-gets-pct":
		return fmt.Sprintf("%.2f%%", v)
	case "reads/s":
		return fmt.Sprintf("%.0f", v)
	case "loader-calls/op", "waiters/op", "round-trips/op", "cold-gets/op", "cold-server-gets/op", "warm-gets/op":
		if v == math.Trunc(v) {
			return fmt.Sprintf("%.0f", v)
		}
		return fmt.Sprintf("%.2f", v)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func formatNs(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%.1f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.1f ms", ns/1e6)
	}
	return fmt.Sprintf("%.2f s", ns/1e9)
}
