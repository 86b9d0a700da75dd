package region_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/internal/params"
	"github.com/dogpile-go/dogpile/region"
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
	configure := func(value string) error {
		r := region.New("param")
		defer r.Close()
		return r.ConfigureURL("memory://?circuit_breaker=" + url.QueryEscape(value))
	}
	for _, ok := range []string{"100ms,5s", " 1s , 1s", "off", "OFF"} {
		if err := configure(ok); err != nil {
			t.Errorf("circuit_breaker=%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1s", "5s,100ms", "0,1s", "-1s,1s", "x,y"} {
		if err := configure(bad); err == nil || !strings.Contains(err.Error(), "circuit_breaker") {
			t.Errorf("circuit_breaker=%q: %v; want an error naming the parameter", bad, err)
		}
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
// unconfigured region and reads them, or the check package config makes of every region before
// configuring any, without holding the region's lock itself.
func TestConfigureWithDoesNotRaceInvalidateOrConfigCheck(t *testing.T) {
	check := params.Provided[*region.Region, region.Option]().Check // what package config calls
	for _, tc := range []struct {
		name string
		call func(r *region.Region)
	}{
		{"Invalidate", func(r *region.Region) { _ = r.Invalidate(context.Background(), region.Soft) }},
		{"config check", func(r *region.Region) { _ = check(r, nil, region.WithExpiration(time.Minute)) }},
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

// ConfigureURL's documentation lists every region parameter, the one place users read them.
func TestConfigureURLDocListsEveryParameter(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "configure.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "ConfigureURL" {
			doc = fn.Doc.Text()
		}
	}
	for _, name := range params.Provided[*region.Region, region.Option]().Names {
		if !strings.Contains(doc, "\t"+name+"=") {
			t.Errorf("ConfigureURL's documentation does not list %s", name)
		}
	}
}

// TestLocalCacheParams: local_cache and local_max_age make a local tier from a URL, together or
// with a local cache given in code, and their bad values are errors naming them.
func TestLocalCacheParams(t *testing.T) {
	ctx := t.Context()
	// Over memory://?copy=true, a byte backend, each backend read decodes a new *string; a local
	// tier answers with the one it keeps.
	servesFromLocalTier := func(t *testing.T, r *region.Region) bool {
		t.Helper()
		v := region.NewView[*string](r)
		create := func(context.Context) (*string, error) { s := "v"; return &s, nil }
		first, err := v.GetOrCreate(ctx, "k", create)
		if err != nil {
			t.Fatal(err)
		}
		second, err := v.GetOrCreate(ctx, "k", create)
		if err != nil {
			t.Fatal(err)
		}
		return first == second
	}
	for _, tc := range []struct {
		name  string
		code  []region.Option
		query string
		local bool
	}{
		{"none", nil, "", false},
		{"both", nil, "&local_cache=100&local_max_age=1m", true},
		{"size with the code's tier", []region.Option{region.WithLocalCache(memory.New(), time.Minute)}, "&local_cache=100", true},
		{"max age with the code's tier", []region.Option{region.WithLocalCache(memory.New(), time.Minute)}, "&local_max_age=5s", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := region.New("local", tc.code...)
			defer r.Close()
			if err := r.ConfigureURL("memory://?copy=true" + tc.query); err != nil {
				t.Fatal(err)
			}
			if got := servesFromLocalTier(t, r); got != tc.local {
				t.Errorf("served from a local tier: %v, want %v", got, tc.local)
			}
		})
	}
	for _, tc := range []struct{ query, want string }{
		{"local_cache=0&local_max_age=1m", "parameter local_cache"},
		{"local_cache=-1&local_max_age=1m", "parameter local_cache"},
		{"local_cache=many&local_max_age=1m", "parameter local_cache"},
		{"local_cache=10&local_max_age=0s", "parameter local_max_age"},
		{"local_cache=10&local_max_age=-1s", "parameter local_max_age"},
		{"local_cache=10&local_max_age=soon", "parameter local_max_age"},
		{"local_cache=10", "local_cache without local_max_age"},
		{"local_max_age=30s", "local_max_age without local_cache"},
	} {
		r := region.New("local")
		err := r.ConfigureURL("memory://?copy=true&" + tc.query)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error saying %q", tc.query, err, tc.want)
		}
		if r.Configured() {
			t.Errorf("%s: configured", tc.query)
		}
		_ = r.Close()
	}
}

// TestLocalCacheOverValueBackendIsAnError: a local tier in front of a backend that keeps Go values
// would never be read; Configure, ConfigureWith and ConfigureURL refuse it, whether it was given
// in code or by the parameters, and take nothing.
func TestLocalCacheOverValueBackendIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name      string
		code      bool // the region is given WithLocalCache at New
		configure func(r *region.Region) error
		want      string
	}{
		{"Configure", true, func(r *region.Region) error {
			b := memory.New()
			defer b.Close()
			return r.Configure(b)
		}, "WithLocalCache over a backend that keeps Go values (*memory.Backend): the local tier would never be used"},
		{"ConfigureWith", false, func(r *region.Region) error {
			b, l1 := memory.New(), memory.New()
			defer b.Close()
			defer l1.Close() // not taken by a failed ConfigureWith, as b is not
			return r.ConfigureWith(b, region.WithLocalCache(l1, time.Minute))
		}, "WithLocalCache over a backend that keeps Go values"},
		{"ConfigureURL", false, func(r *region.Region) error {
			return r.ConfigureURL("memory://?local_cache=100&local_max_age=1m")
		}, "local_cache over a backend that keeps Go values (*memory.Backend)"},
		{"ConfigureURL with the code's tier", true, func(r *region.Region) error {
			return r.ConfigureURL("memory://")
		}, "WithLocalCache over a backend that keeps Go values"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []region.Option
			if tc.code {
				opts = append(opts, region.WithLocalCache(memory.New(), time.Minute))
			}
			r := region.New("users", opts...)
			defer r.Close()
			err := tc.configure(r)
			var re *region.Error
			if !errors.Is(err, region.ErrInvalidOption) || !errors.As(err, &re) || re.Kind != region.KindUsage || re.Op != region.OpConfigure {
				t.Fatalf("err = %v; want a usage *Error of configure wrapping ErrInvalidOption", err)
			}
			if !strings.Contains(err.Error(), `region "users": configure: usage: `) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q; want it to say %q", err, tc.want)
			}
			if r.Configured() {
				t.Error("configured")
			}
		})
	}
}
