package main

import "testing"

// TestPairedRatioIsTheMedianOfEachRunsRatio checks the paired ratio against hand-worked samples:
// each run's ratio first, then their median, which differs from the ratio of the medians when the
// machine's speed changes between runs; and no answer unless both were measured in every run.
func TestPairedRatioIsTheMedianOfEachRunsRatio(t *testing.T) {
	d := &dataset{values: map[key]map[string][]float64{}, procs: map[string][]int{"Zipf": {2}}}
	set := func(impl string, vals ...float64) {
		d.values[key{"Zipf", impl, 2}] = map[string][]float64{"ns/op": vals}
	}
	// Runs 1 and 3 on a machine half as fast as in runs 2 and 4: the per-run ratios are 1.4,
	// 1.0, 1.1 and 1.2, whose median is 1.15; the medians, 340 and 300, make 1.13.
	set("dogpile", 560, 200, 440, 240)
	set("otter", 400, 200, 400, 200)
	set("odd", 110, 300, 90)
	set("odd-peer", 100, 200, 100)
	set("short", 100, 100, 100)
	set("zero", 100, 100, 100, 100)
	set("zero-peer", 100, 0, 100, 100)
	for _, tc := range []struct {
		a, b string
		want float64
		ok   bool
	}{
		{"dogpile", "otter", 1.15, true},
		{"odd", "odd-peer", 1.1, true}, // ratios 1.1, 1.5, 0.9
		{"dogpile", "short", 0, false}, // not measured in every run
		{"dogpile", "missing", 0, false},
		{"zero", "zero-peer", 0, false},
	} {
		got, ok := d.pairedRatio("Zipf", tc.a, tc.b, 0, "ns/op")
		if ok != tc.ok || (ok && (got < tc.want-1e-9 || got > tc.want+1e-9)) {
			t.Errorf("pairedRatio(%s, %s) = %v, %v; want %v, %v", tc.a, tc.b, got, ok, tc.want, tc.ok)
		}
	}
}
