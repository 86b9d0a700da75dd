package main

import (
	"fmt"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// series is one set of bars of a plot: one unit of the benchmark at one GOMAXPROCS.
type series struct {
	label string
	procs int
	unit  string
	bench string // "": the plot's
}

// plotSpec is one PNG: horizontal bars, one group per contender, one bar per series.
type plotSpec struct {
	name   string // the file is NAME.png
	title  string
	axis   string // the value axis' label
	bench  string
	series []series
	scale  float64 // values are multiplied by it (ns to µs: 1e-3)
}

var plotSpecs = []plotSpec{
	{"hit", "Warm hit through get-or-load (lower is better)", "ns/op", "Hit", []series{
		{"1 goroutine, cpu=1", 1, "ns/op", ""}, {"1 goroutine, cpu=2", 2, "ns/op", ""},
	}, 1},
	{"hit-parallel", "Warm hit, every P at once (lower is better)", "ns/op", "HitParallel", []series{
		{"parallel, cpu=1", 1, "ns/op", ""}, {"parallel, cpu=2", 2, "ns/op", ""},
	}, 1},
	{"get", "Warm read without a loader (lower is better)", "ns/op", "Get", []series{
		{"1 goroutine, cpu=1", 1, "ns/op", ""}, {"1 goroutine, cpu=2", 2, "ns/op", ""},
	}, 1},
	{"get-parallel", "Warm read without a loader, every P at once (lower is better)", "ns/op", "GetParallel", []series{
		{"parallel, cpu=1", 1, "ns/op", ""}, {"parallel, cpu=2", 2, "ns/op", ""},
	}, 1},
	{"zipf", "Zipf reads over a bounded cache (lower is better)", "ns/op", "Zipf", []series{
		{"ns/op", 0, "ns/op", ""},
	}, 1},
	{"zipf-hit-ratio", "Zipf reads over a bounded cache: hit ratio (higher is better)", "hit ratio", "Zipf", []series{
		{"hit ratio", 0, "hit-ratio", ""},
	}, 1},
	{"memory", "Heap per cached value, 100,000 values (lower is better)", "bytes per value", "Memory", []series{
		{"bytes/item", 0, "bytes/item", ""},
	}, 1},
	{"stampede", "Stampede: 1,000 callers, one cold key, 50 ms loader (lower is better)", "latency (ms)", "Stampede", []series{
		{"p50", 0, "p50-ms", ""}, {"p99", 0, "p99-ms", ""},
	}, 1},
	{"expiry", "Expiry under load: 100 callers, 50 ms loader (lower is better)", "latency (ms)", "Expiry", []series{
		{"p99", 0, "p99-ms", ""}, {"max", 0, "max-ms", ""},
	}, 1},
	{"redis", "Redis hit latency (lower is better)", "µs/op", "RedisHit", []series{
		{"µs/op", 0, "ns/op", ""},
	}, 1e-3},
	{"redis-batch", "Redis, a batch of 100 keys (lower is better)", "ms/op", "RedisBatch", []series{
		{"warm", 0, "ns/op", ""}, {"cold", 0, "ns/op", "RedisBatchCold"},
	}, 1e-6},
	{"redis-herd", "Redis, 1,000 callers on one warm key: reads per second (higher is better)", "reads/s", "RedisHerd", []series{
		{"reads/s", 0, "reads/s", ""},
	}, 1},
}

// drawPlots draws every plot whose benchmark ran and returns the file of each, by name.
func drawPlots(d *dataset, dir string) (map[string]string, error) {
	files := map[string]string{}
	for _, ps := range plotSpecs {
		impls := d.impls[ps.bench]
		if len(impls) == 0 {
			continue
		}
		p, err := drawPlot(d, ps, impls)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", ps.name, err)
		}
		file := ps.name + ".png"
		height := vg.Inch + vg.Length(len(impls)*len(ps.series))*0.24*vg.Inch
		if err := p.Save(8*vg.Inch, height, filepath.Join(dir, file)); err != nil {
			return nil, fmt.Errorf("plot %s: %w", ps.name, err)
		}
		files[ps.name] = file
	}
	return files, nil
}

func drawPlot(d *dataset, ps plotSpec, impls []string) (*plot.Plot, error) {
	// The first contender at the top: bars are laid out from the bottom.
	rows := slices.Clone(impls)
	slices.Reverse(rows)

	p := plot.New()
	p.Title.Text = ps.title
	p.X.Label.Text = ps.axis
	p.X.Min = 0
	p.Legend.Top = true
	p.Legend.Left = false

	barWidth := vg.Points(11)
	n := len(ps.series)
	maxV, topV := 0.0, 0.0 // the longest bar, and the longest of the top contender's
	for i, s := range ps.series {
		vals := make(plotter.Values, len(rows))
		var xys plotter.XYs
		var labels []string
		bench := ps.bench
		if s.bench != "" {
			bench = s.bench
		}
		for j, impl := range rows {
			st, ok := d.get(bench, impl, s.procs, s.unit)
			if !ok {
				continue
			}
			v := st.summary.Center * ps.scale
			vals[j] = v
			maxV = max(maxV, v)
			if j == len(rows)-1 {
				topV = max(topV, v)
			}
			xys = append(xys, plotter.XY{X: v, Y: float64(j)})
			labels = append(labels, format(st.summary.Center, s.unit))
		}
		bars, err := plotter.NewBarChart(vals, barWidth)
		if err != nil {
			return nil, err
		}
		bars.Horizontal = true
		// Series top to bottom in legend order within each contender's group.
		bars.Offset = vg.Length(float64(n-1)/2-float64(i)) * barWidth
		bars.Color = plotutil.Color(i)
		bars.LineStyle.Width = 0
		p.Add(bars)
		if n > 1 {
			p.Legend.Add(s.label, bars)
		}
		if len(xys) > 0 {
			l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
			if err != nil {
				return nil, err
			}
			for k := range l.TextStyle {
				l.TextStyle[k].Font.Size = vg.Points(8)
				l.TextStyle[k].YAlign = draw.YCenter
			}
			l.Offset = vg.Point{X: vg.Points(3), Y: bars.Offset}
			p.Add(l)
		}
	}
	p.X.Max = maxV * 1.25 // room for the labels
	if topV > p.X.Max/2 {
		p.Legend.Top = false // the top contender's bars reach under the legend
	}
	p.NominalY(rows...)
	return p, nil
}
