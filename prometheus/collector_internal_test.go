package dogpileprom

import (
	"reflect"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/region"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Every field of region.Stats and of region.ErrorStats is exported, by exactly one series: a
// Stats whose fields each hold a value of their own (1, 2, 3... and, for durations, as many
// seconds) yields each value once.
func TestEveryStatsFieldIsExported(t *testing.T) {
	var s region.Stats
	n := 0
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			switch {
			case f.Type() == reflect.TypeFor[time.Duration]():
				n++
				f.SetInt(int64(n) * int64(time.Second))
			case f.Kind() == reflect.Uint64:
				n++
				f.SetUint(uint64(n))
			case f.Kind() == reflect.Struct:
				fill(f)
			default:
				t.Fatalf("Stats field %s of type %s: this test does not know it", v.Type().Field(i).Name, f.Type())
			}
		}
	}
	fill(reflect.ValueOf(&s).Elem())

	r := region.New("r")
	defer r.Close()
	c, err := NewCollector(r)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan prometheus.Metric, 100)
	c.collect(ch, 0, s)
	close(ch)
	seen := map[float64]string{}
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		v, name := pb.GetCounter().GetValue(), m.Desc().String()
		if prev, ok := seen[v]; ok {
			t.Errorf("value %v exported twice: %s and %s", v, prev, name)
		}
		seen[v] = name
	}
	for i := 1; i <= n; i++ {
		if _, ok := seen[float64(i)]; !ok {
			t.Errorf("the Stats field holding %d is not exported", i)
		}
	}
	if len(seen) != n {
		t.Errorf("%d series for %d Stats fields", len(seen), n)
	}
}
