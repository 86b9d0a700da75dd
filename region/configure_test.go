package region_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

func TestConfigureWith(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	r := region.New("cw", clk.option())
	defer r.Close()
	refused := memory.New()
	defer refused.Close() // not taken by a failed ConfigureWith: still the caller's
	if err := r.ConfigureWith(refused, region.WithExpiration(time.Minute), region.WithStorageTTL(time.Second)); err == nil {
		t.Fatal("storage TTL shorter than the expiration accepted")
	}
	if r.Configured() {
		t.Fatal("a failed ConfigureWith configured the region")
	}
	if err := r.ConfigureWith(memory.New(), region.WithExpiration(time.Minute), region.WithBackgroundRefresh(1)); err != nil {
		t.Fatal(err)
	}
	second := memory.New()
	defer second.Close()
	if err := r.ConfigureWith(second); !errors.Is(err, region.ErrAlreadyConfigured) {
		t.Errorf("second ConfigureWith: %v", err)
	}
	v := region.NewView[string](r)
	if err := v.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Minute) // expired under the configured expiration
	release := make(chan struct{})
	got, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) { <-release; return "new", nil })
	if err != nil || got != "old" {
		t.Errorf("with the background refresh given at Configure: %q, %v; want the old value at once", got, err)
	}
	close(release)
}

// TestCircuitBreakerParam: circuit_breaker takes "min,max" or "off", and rejects the rest
// naming itself.
func TestCircuitBreakerParam(t *testing.T) {
	for _, ok := range []string{"100ms,5s", " 1s , 1s", "off", "OFF"} {
		if _, err := region.Param("circuit_breaker", ok); err != nil {
			t.Errorf("circuit_breaker=%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1s", "5s,100ms", "0,1s", "-1s,1s", "x,y"} {
		if _, err := region.Param("circuit_breaker", bad); err == nil || !strings.Contains(err.Error(), "circuit_breaker") {
			t.Errorf("circuit_breaker=%q: %v; want an error naming the parameter", bad, err)
		}
	}
	r := region.New("param")
	defer r.Close()
	if err := r.ConfigureURL("memory://?circuit_breaker=off"); err != nil {
		t.Fatal(err)
	}
}

// TestConfigureURLHidesPasswords: whatever is wrong with the URL (it does not parse, its query
// does not, the backend refuses a parameter or the scheme is unknown), the error shows neither the
// password of its user information nor one given as a query parameter, nor part of either.
func TestConfigureURLHidesPasswords(t *testing.T) {
	for _, raw := range []string{
		"redis://:s3cr3t",                     // "@host" forgotten: url.Parse quotes the "port"
		"redis://admin:s3cr3t@[::1",           // does not parse
		"redis://admin:s3#cr3t@127.0.0.1:1/0", // '#' unescaped in the password
		"memory://?password=s3cr3t",           // a parameter memory does not know
		"memory://?sentinel_password=s3cr3t&max_entries=x",
		"memory://?password=s3cr3t%zz",                 // a query that does not parse
		"nosuch://admin:s3cr3t@host/0?password=s3cr3t", // an unknown scheme
		"memory://?expiration=soon&password=s3cr3t",    // a bad region parameter
	} {
		r := region.New("pw")
		err := r.ConfigureURL(raw)
		r.Close()
		if err == nil {
			t.Errorf("ConfigureURL(%q) succeeded", raw)
			continue
		}
		for _, secret := range []string{"s3cr3t", "cr3t", "%zz"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("ConfigureURL(%q) error shows %q: %v", raw, secret, err)
			}
		}
	}
}

// ConfigureWith writes the region's settings without racing Invalidate, which works on an
// unconfigured region and reads them, or CheckConfig, which package config calls without the
// region's lock.
func TestConfigureWithDoesNotRaceInvalidateOrCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(r *region.Region)
	}{
		{"Invalidate", func(r *region.Region) { _ = r.Invalidate(context.Background(), region.Soft) }},
		{"CheckConfig", func(r *region.Region) { _ = r.CheckConfig(region.WithExpiration(time.Minute)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := region.New(t.Name())
			defer r.Close()
			var wg sync.WaitGroup
			start := make(chan struct{})
			wg.Go(func() {
				<-start
				for range 1000 {
					tc.call(r)
				}
			})
			close(start)
			if err := r.ConfigureWith(memory.New(), region.WithExpiration(time.Minute)); err != nil {
				t.Error(err)
			}
			wg.Wait()
		})
	}
}

// ConfigureURL rejects a query it cannot parse (a ';', a bad %-escape), as backends.Open does,
// instead of dropping the pair and losing a prefix or a bound the operator wrote.
func TestConfigureURLRejectsMalformedQuery(t *testing.T) {
	for _, raw := range []string{
		"memory://?max_entries=10;copy=true",
		"memory://?max_entries=%zz",
	} {
		r := region.New("u")
		err := r.ConfigureURL(raw)
		_ = r.Close()
		if err == nil {
			t.Errorf("ConfigureURL(%q): no error; the malformed parameter was dropped silently", raw)
		}
	}
}

// TestConfigureIsBoundedOnAPausedRedis: configuring a region that shares its invalidations, on a
// Redis that is paused (it accepts connections and never answers), returns by the context's
// deadline (ConfigureContext) or after region.DefaultConfigureTimeout (ConfigureWith): the
// subscription and the read of the stored invalidations fail, are reported, and are tried again
// in the background. Close does not wait for the server either. Once the server is back, an
// invalidation made elsewhere reaches the region.
func TestConfigureIsBoundedOnAPausedRedis(t *testing.T) {
	srv := testserver.StartRedis(t)
	// A client as redis.Open builds it (ContextTimeoutEnabled), closed when the test ends.
	newBackend := func() *redis.Backend {
		c := goredis.NewClient(&goredis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		return redis.New(c)
	}
	sharing := func() *region.Region {
		return region.New("shared", region.WithSharedInvalidation(50*time.Millisecond), region.WithLogger(slog.New(slog.DiscardHandler)))
	}
	srv.Pause(t)

	r := sharing()
	ctx, cancel := context.WithTimeout(t.Context(), testserver.CallDeadline)
	start := time.Now()
	err := r.ConfigureContext(ctx, newBackend())
	elapsed := time.Since(start)
	cancel()
	t.Logf("ConfigureContext with a %v deadline on a paused Redis: %v after %v", testserver.CallDeadline, err, elapsed.Round(time.Millisecond))
	if err != nil {
		t.Fatalf("ConfigureContext: %v; want the region configured, the failures reported", err)
	}
	if elapsed > time.Second {
		t.Errorf("ConfigureContext with a %v deadline on a paused Redis took %v; want about the deadline", testserver.CallDeadline, elapsed)
	}

	r2 := sharing()
	start = time.Now()
	err = r2.ConfigureWith(newBackend())
	elapsed = time.Since(start)
	t.Logf("ConfigureWith on a paused Redis: %v after %v", err, elapsed.Round(time.Millisecond))
	if err != nil {
		t.Fatalf("ConfigureWith: %v", err)
	}
	if elapsed > region.DefaultConfigureTimeout+2*time.Second {
		t.Errorf("ConfigureWith on a paused Redis took %v; want about region.DefaultConfigureTimeout, %v", elapsed, region.DefaultConfigureTimeout)
	}
	start = time.Now()
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Close on a paused Redis took %v; want it not to wait for the server", elapsed)
	}

	// Back: the first region reads what another process stores (its poll, or its subscription
	// once it is made again).
	srv.Resume()
	v := region.NewView[string](r)
	other := region.New("shared", region.WithSharedInvalidation(time.Minute), region.WithLogger(slog.New(slog.DiscardHandler)))
	if err := other.Configure(newBackend()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	if err := v.Set(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if err := other.Invalidate(t.Context(), region.Hard); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		if _, ok, _ := v.Get(t.Context(), "k", region.WithIgnoreExpiration()); !ok {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the invalidation made elsewhere did not reach the region within 5s of the server's return")
		}
	}
	start = time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close: %v", time.Since(start))
}
