package region

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/internal/dogpile"
)

// DefaultConfigureTimeout bounds the I/O of configuring a region when the context has no
// deadline (Configure, ConfigureWith and ConfigureURL take none): a region that shares its
// invalidations (WithSharedInvalidation) or has a local cache (WithLocalCache) subscribes to its
// announcements where the backend can broadcast, and reads the stored invalidations, before
// Configure returns. It also bounds each later read and subscription attempt of the region's
// watcher, so that Close never waits longer for a server that does not answer.
const DefaultConfigureTimeout = 5 * time.Second

// ConfigureWith is Configure with options applied first, for settings that come from the
// environment rather than from code (package config, ConfigureURL): they are applied over the
// options given to New and validated together. On an error nothing changes: the region stays
// unconfigured, and b is not taken (the caller closes it). Its I/O, if any, is bounded by
// DefaultConfigureTimeout; see ConfigureContext.
func (r *Region) ConfigureWith(b backends.Backend, opts ...Option) error {
	return r.ConfigureContext(context.Background(), b, opts...)
}

// ConfigureContext is ConfigureWith with ctx bounding the I/O that configuring does: subscribing
// to the region's announcements and reading the stored invalidations (WithSharedInvalidation,
// WithLocalCache), up to DefaultConfigureTimeout when ctx has no deadline; without those options
// there is none. That I/O failing (the backend down, or not answering by then) fails nothing: the
// region is configured, the failure is reported (WithErrorHandler, the logger), and the watcher
// goes on in the background, subscribing again and reading the stored invalidations at every
// poll. Until then the region may miss invalidations made elsewhere. ctx is not kept.
func (r *Region) ConfigureContext(ctx context.Context, b backends.Backend, opts ...Option) error {
	if b == nil {
		return r.fail(OpConfigure, KindUsage, "", errors.New("nil backend"))
	}
	r.configMu.Lock()
	defer r.configMu.Unlock()
	if r.closed.Load() {
		return r.fail(OpConfigure, KindClosed, "", ErrClosed)
	}
	if r.bound.Load() != nil {
		return r.fail(OpConfigure, KindUsage, "", ErrAlreadyConfigured)
	}
	cfg, err := r.withOptions(opts)
	if err != nil {
		return r.fail(OpConfigure, KindUsage, "", err)
	}
	// No call reads cfg before the backend is bound (every operation loads bound first), so
	// replacing it here, before the Store in configure, is safe.
	if cfg.background != r.cfg.background {
		old := r.engine
		r.engine = r.newEngine(cfg.background)
		old.Close() // never used: no flight can exist before Configure
	}
	r.cfg = cfg
	r.engine.CreationTimeout = cfg.creation()
	r.configure(b)
	r.startWatcher(ctx)
	return nil
}

// CheckConfig reports whether ConfigureWith would accept opts: the error it would return for
// them, without configuring anything.
func (r *Region) CheckConfig(opts ...Option) error {
	r.configMu.Lock() // ConfigureWith writes the settings under it
	defer r.configMu.Unlock()
	if r.closed.Load() {
		return r.fail(OpConfigure, KindClosed, "", ErrClosed)
	}
	if r.bound.Load() != nil {
		return r.fail(OpConfigure, KindUsage, "", ErrAlreadyConfigured)
	}
	_, err := r.withOptions(opts)
	return r.fail(OpConfigure, KindUsage, "", err)
}

// withOptions returns the region's settings with opts applied, validated.
func (r *Region) withOptions(opts []Option) (config, error) {
	cfg := r.cfg
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return cfg, err
		}
	}
	if err := cfg.validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// ConfigureURL opens the backend a URL names (backends.Open) and configures the region with it,
// taking the region's own settings out of the URL's query first, so that one string from the
// environment sets up a region:
//
//	redis://cache:6379/0?prefix=app:&expiration=10m&lock_timeout=5s
//	memory://?max_entries=100000&expiration=1m
//
// The region's parameters (see RegionParams) are removed from the query before the rest goes to
// the backend, which rejects what it does not know. On an error nothing is configured, and a
// backend already opened is closed. Errors show the URL as backends.Redact does: no user
// information, no password parameter.
func (r *Region) ConfigureURL(rawURL string) error {
	u, err := backends.ParseURL(rawURL) // its error shows the URL redacted
	if err != nil {
		return r.fail(OpConfigure, KindUsage, "", fmt.Errorf("invalid URL: %w", err))
	}
	q, err := url.ParseQuery(u.RawQuery) // u.Query() would drop what it cannot parse, silently
	if err != nil {
		// Not err: its escape ("%zz") may be part of a password. The query, redacted, locates it.
		return r.fail(OpConfigure, KindUsage, "", fmt.Errorf("invalid query %q: a %% not followed by two hex digits, or a ';'",
			backends.Redact("?"+u.RawQuery)))
	}
	opts, err := OptionsFromQuery(q)
	if err != nil {
		return r.fail(OpConfigure, KindUsage, "", err)
	}
	u.RawQuery = q.Encode()
	b, err := backends.Open(URLString(u))
	if err != nil {
		return r.fail(OpConfigure, KindUsage, "", err)
	}
	if err := r.ConfigureWith(b, opts...); err != nil {
		if c, ok := backends.As[io.Closer](b); ok {
			_ = c.Close()
		}
		return err
	}
	return nil
}

// RegionParams are the query parameters of a URL that ConfigureURL takes for the region, with the
// options they set: durations as time.ParseDuration reads them ("10m", "1h30m"), numbers as
// strconv reads them.
var RegionParams = []string{
	"expiration",          // WithExpiration
	"storage_ttl",         // WithStorageTTL
	"lock_timeout",        // WithLockTimeout
	"background_refresh",  // WithBackgroundRefresh (workers)
	"failure_policy",      // WithFailurePolicy: "open" or "closed"
	"early_refresh",       // WithEarlyRefresh (beta)
	"stale_if_error",      // WithStaleIfError (max staleness)
	"jitter",              // WithJitter (fraction)
	"shared_invalidation", // WithSharedInvalidation (poll interval)
	"creation_timeout",    // WithCreationTimeout
	"circuit_breaker",     // WithCircuitBreaker: "min,max" ("100ms,5s"), or "off"
	"signed_entries",      // WithSignedEntries: "id:base64-secret[,id:base64-secret...]", the first signs
}

// OptionsFromQuery takes the RegionParams out of q and returns the options they set. An invalid
// value is an error naming its parameter. It is the parsing ConfigureURL does; package config
// uses it for its documents.
func OptionsFromQuery(q url.Values) ([]Option, error) {
	var opts []Option
	for _, name := range RegionParams {
		vals, ok := q[name]
		if !ok {
			continue
		}
		delete(q, name)
		if len(vals) != 1 {
			return nil, fmt.Errorf("parameter %s given %d times", name, len(vals))
		}
		o, err := Param(name, vals[0])
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	return opts, nil
}

// Param returns the option that the region parameter name (one of RegionParams) sets to value,
// or an error naming the parameter.
func Param(name, value string) (Option, error) {
	dur := func() (time.Duration, error) {
		d, err := time.ParseDuration(value)
		if err != nil {
			return 0, fmt.Errorf("parameter %s: %q is not a duration (say 10m, 1h30m)", name, value)
		}
		return d, nil
	}
	num := func() (float64, error) {
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, fmt.Errorf("parameter %s: %q is not a number", name, value)
		}
		return f, nil
	}
	var o Option
	switch name {
	case "expiration", "storage_ttl", "lock_timeout", "stale_if_error", "shared_invalidation", "creation_timeout":
		d, err := dur()
		if err != nil {
			return nil, err
		}
		o = map[string]func(time.Duration) Option{
			"expiration": WithExpiration, "storage_ttl": WithStorageTTL,
			"lock_timeout": WithLockTimeout, "stale_if_error": WithStaleIfError,
			"shared_invalidation": WithSharedInvalidation, "creation_timeout": WithCreationTimeout,
		}[name](d)
	case "early_refresh", "jitter":
		f, err := num()
		if err != nil {
			return nil, err
		}
		if name == "jitter" {
			o = WithJitter(f)
		} else {
			o = WithEarlyRefresh(f)
		}
	case "background_refresh":
		n, err := strconv.Atoi(value)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %q is not a whole number", name, value)
		}
		if n == 0 {
			return func(c *config) error { c.background = 0; return nil }, nil
		}
		o = WithBackgroundRefresh(n)
	case "circuit_breaker":
		if strings.EqualFold(value, "off") {
			o = WithCircuitBreaker(0, 0)
			break
		}
		lo, hi, ok := strings.Cut(value, ",")
		min, err1 := time.ParseDuration(strings.TrimSpace(lo))
		max, err2 := time.ParseDuration(strings.TrimSpace(hi))
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("parameter %s: %q: want two durations, min,max (say 100ms,5s), or off", name, value)
		}
		o = WithCircuitBreaker(min, max)
	case "signed_entries":
		sign, verify, err := parseSigningKeys(value)
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", name, err) // never the secrets themselves
		}
		o = WithSignedEntries(sign, verify...)
	case "failure_policy":
		switch strings.ToLower(value) {
		case "open":
			o = WithFailurePolicy(FailOpen)
		case "closed":
			o = WithFailurePolicy(FailClosed)
		default:
			return nil, fmt.Errorf("parameter %s: %q: want open or closed", name, value)
		}
	default:
		return nil, fmt.Errorf("unknown region parameter %q (known: %s)", name, strings.Join(RegionParams, ", "))
	}
	// Check the value now, so that the error names the parameter.
	var probe config
	if err := o(&probe); err != nil {
		return nil, fmt.Errorf("parameter %s: %w", name, err)
	}
	return o, nil
}

// newEngine returns the lock engine for a region with the given background workers, wired to
// the region's reports.
func (r *Region) newEngine(background int) *dogpile.Engine {
	e := dogpile.New(background)
	e.OnDrop = func(key string) {
		r.cfg.logger.Debug("dogpile: background refresh skipped: every worker busy",
			slog.String("region", r.name), slog.String("key", key))
	}
	return e
}

// URLString is u.String(), but keeps the "//" of a URL without host or path ("memory://",
// which url.URL would print "memory:"), so that errors show URLs as they were written.
func URLString(u *url.URL) string {
	if u.Opaque == "" && u.Host == "" && u.Path == "" && u.User == nil && u.Scheme != "" {
		s := u.Scheme + "://"
		if u.RawQuery != "" {
			s += "?" + u.RawQuery
		}
		return s
	}
	return u.String()
}
