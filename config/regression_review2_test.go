package config_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/config"
	"github.com/dogpile-go/dogpile/region"
)

// A whole-number argument of a million or more is formatted by fmt.Sprint of the float64 that
// JSON decoding made of it: "1e+06", which the backend rejects as not a count.
func TestReview2LargeNumericArgument(t *testing.T) {
	d, err := config.Parse([]byte("regions:\n  big:\n    backend: memory://\n    arguments: {max_entries: 1000000}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rs := newRegions(t, "big")
	if err := config.Configure(d, nil, rs...); err != nil {
		t.Errorf("max_entries: 1000000: %v", err)
	}
}

// "All or nothing: on an error no region is configured." A closed region passes the up-front
// checks (it is not Configured), so the regions listed before it are configured before its
// ConfigureWith fails with ErrClosed: half-configured.
func TestReview2ClosedRegionHalfConfigures(t *testing.T) {
	d, err := config.Parse([]byte("regions:\n  a: {backend: \"memory://\"}\n  b: {backend: \"memory://\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rs := newRegions(t, "a", "b")
	if err := rs[1].Close(); err != nil {
		t.Fatal(err)
	}
	err = config.Configure(d, nil, rs...)
	if err == nil {
		t.Fatal("configuring a closed region succeeded")
	}
	if rs[0].Configured() {
		t.Errorf("Configure failed (%v) but region a was configured: half-configured", err)
	}
	_ = region.ErrClosed
}

// The environment overrides the document, and "the variable's URL carries its own parameters";
// but a region parameter in DOGPILE_<REGION>_BACKEND's URL loses to the document's field: the
// document's expiration of 10m stays, the environment's 1m is ignored.
func TestReview2EnvBackendURLParamsLoseToDocument(t *testing.T) {
	ctx := t.Context()
	d, err := config.Parse([]byte("regions:\n  users: {backend: \"memory://\", expiration: 10m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	r := region.New("users", region.WithClock(func() time.Time { return time.Unix(0, now.Load()) }))
	defer r.Close()
	env := map[string]string{"DOGPILE_USERS_BACKEND": "memory://?expiration=1m"}
	if err := config.Configure(d, func(k string) string { return env[k] }, r); err != nil {
		t.Fatal(err)
	}
	v := region.NewView[string](r)
	if err := v.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(2 * time.Minute))
	if _, ok, _ := v.Get(ctx, "k"); ok {
		t.Errorf("2 minutes after Set the value is fresh: the document's expiration (10m) won over the environment's URL (1m)")
	}
}
