package region

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/internal/params"
)

// DefaultConfigureTimeout bounds the I/O of configuring a region when the context has no
// deadline (Configure, ConfigureWith and ConfigureURL take none): a region that shares its
// invalidations (WithSharedInvalidation) or has a local cache (WithLocalCache) subscribes to its
// announcements where the backend can broadcast, and reads the stored invalidations, before
// Configure returns; so does one on a backend that can both lock and broadcast, for the
// releases of locks (WithLockPoll). It also bounds each later read and subscription attempt of the region's
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
// WithLocalCache, and on a backend that locks and broadcasts, WithLockPoll's announcements), up
// to DefaultConfigureTimeout when ctx has no deadline; without those there is none. That I/O
// failing (the backend down, or not answering by then) fails nothing: the region is configured,
// the failure is reported (WithErrorHandler, the logger), and the watcher goes on in the
// background, subscribing again and reading the stored invalidations at every poll. Until then
// the region may miss invalidations made elsewhere, and its callers waiting for another
// process's lock find the value by polling. ctx is not kept.
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
	cfg, err := r.withOptions(b, opts)
	if err != nil {
		return r.fail(OpConfigure, KindUsage, "", err)
	}
	cfg.makeLocal()
	// No call reads cfg before the backend is bound (every operation loads bound first), so
	// replacing it here, before the Store in configure, is safe.
	if cfg.background != r.cfg.background {
		old := r.engine
		r.engine = r.newEngine(cfg.background)
		old.Close() // never used: no flight can exist before Configure
	}
	r.cfg = cfg
	r.engine.CreationTimeout = cfg.creation()
	r.engine.PollMin, r.engine.PollMax = cfg.lockPollMin, cfg.lockPollMax
	r.configure(b)
	r.startWatcher(ctx)
	return nil
}

// checkConfig reports whether ConfigureWith would accept b and opts: the error it would return
// for them, without configuring anything. Package config calls it (paramTable.Check) for every
// region before it configures any.
func (r *Region) checkConfig(b backends.Backend, opts ...Option) error {
	r.configMu.Lock() // ConfigureWith writes the settings under it
	defer r.configMu.Unlock()
	if r.closed.Load() {
		return r.fail(OpConfigure, KindClosed, "", ErrClosed)
	}
	if r.bound.Load() != nil {
		return r.fail(OpConfigure, KindUsage, "", ErrAlreadyConfigured)
	}
	_, err := r.withOptions(b, opts)
	return r.fail(OpConfigure, KindUsage, "", err)
}

// withOptions returns the region's settings with opts applied, validated, for the backend b.
func (r *Region) withOptions(b backends.Backend, opts []Option) (config, error) {
	cfg := r.cfg
	for _, o := range opts {
		if err := cfg.apply(o); err != nil {
			return cfg, err
		}
	}
	_, cfg.locks = backends.As[backends.Locker](b)
	if err := cfg.validate(); err != nil {
		return cfg, err
	}
	if err := cfg.validateLocal(b); err != nil {
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
// The region's parameters, each with the option it sets, are:
//
//	expiration=10m             WithExpiration
//	storage_ttl=1h             WithStorageTTL
//	lock_timeout=5s            WithLockTimeout
//	background_refresh=4       WithBackgroundRefresh (workers; 0: off)
//	failure_policy=closed      WithFailurePolicy: open or closed
//	early_refresh=1            WithEarlyRefresh (beta)
//	stale_if_error=1h          WithStaleIfError (max staleness)
//	jitter=0.1                 WithJitter (fraction)
//	shared_invalidation=1s     WithSharedInvalidation (poll interval)
//	creation_timeout=1m        WithCreationTimeout
//	circuit_breaker=100ms,5s   WithCircuitBreaker: min,max, or off
//	lock_poll=1ms,100ms        WithLockPoll: min,max
//	signed_entries=k1:c2Vj...  WithSignedEntries: id:base64-secret[,id:base64-secret...], the first signs
//	local_cache=10000          WithLocalCache: a memory backend of at most this many entries
//	local_max_age=30s          WithLocalCache's maxAge
//
// Durations read as time.ParseDuration reads them and must not be negative (in code, a negative
// expiration means "already expired"; in a URL it is a typo), numbers as strconv does; package config takes
// the same parameters as fields of its documents and as environment variables. They are removed
// from the query before the rest goes to the backend, which rejects what it does not know. An
// invalid value, or a parameter given twice, is an error naming the parameter.
//
// On an error nothing is configured, and a backend already opened is closed. Errors show the URL
// as backends.Redact does: no user information, no password parameter.
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
	opts, err := paramTable.FromQuery(q)
	if err != nil {
		return r.fail(OpConfigure, KindUsage, "", err)
	}
	u.RawQuery = q.Encode()
	b, err := backends.Open(params.URLString(u))
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

// paramTable is the region's parameters and its check of settings, as ConfigureURL uses them
// and package config has them from internal/params.
var paramTable = params.Table[*Region, Option]{
	Names: paramNames(),
	Param: param,
	Check: (*Region).checkConfig,
}

func init() { params.Provide(paramTable) }

// regionParam is a parameter ConfigureURL takes: its name, and the reading of its value into the
// option it sets, with errors that name the parameter.
type regionParam struct {
	name  string
	parse func(name, value string) (Option, error)
}

// regionParams are the parameters ConfigureURL lists, in the order their options apply.
var regionParams = []regionParam{
	{"expiration", durationParam(WithExpiration)},
	{"storage_ttl", durationParam(WithStorageTTL)},
	{"lock_timeout", durationParam(WithLockTimeout)},
	{"background_refresh", backgroundRefreshParam},
	{"failure_policy", failurePolicyParam},
	{"early_refresh", numberParam(WithEarlyRefresh)},
	{"stale_if_error", durationParam(WithStaleIfError)},
	{"jitter", numberParam(WithJitter)},
	{"shared_invalidation", durationParam(WithSharedInvalidation)},
	{"creation_timeout", durationParam(WithCreationTimeout)},
	{"circuit_breaker", circuitBreakerParam},
	{"lock_poll", lockPollParam},
	{"signed_entries", signedEntriesParam},
	{"local_cache", localCacheParam},
	{"local_max_age", localMaxAgeParam},
}

// paramNames returns the names of regionParams, in their order.
func paramNames() []string {
	names := make([]string, len(regionParams))
	for i, p := range regionParams {
		names[i] = p.name
	}
	return names
}

// param returns the option that the region parameter name sets to value, checked alone so that
// an error names the parameter.
func param(name, value string) (Option, error) {
	i := slices.IndexFunc(regionParams, func(p regionParam) bool { return p.name == name })
	if i < 0 {
		return Option{}, fmt.Errorf("unknown region parameter %q (known: %s)", name, strings.Join(paramNames(), ", "))
	}
	o, err := regionParams[i].parse(name, value)
	if err != nil {
		return Option{}, err
	}
	// Check the value now, so that the error names the parameter.
	var probe config
	if err := probe.apply(o); err != nil {
		return Option{}, fmt.Errorf("parameter %s: %w", name, err)
	}
	return o, nil
}

// durationParam reads a duration, as time.ParseDuration does, for the option set sets.
func durationParam(set func(time.Duration) Option) func(name, value string) (Option, error) {
	return func(name, value string) (Option, error) {
		d, err := time.ParseDuration(value)
		if err != nil {
			return Option{}, fmt.Errorf("parameter %s: %q is not a duration (say 10m, 1h30m)", name, value)
		}
		if d < 0 {
			// In code a negative expiration means "already expired"; written in a URL or a
			// document it is a typo far more often.
			return Option{}, fmt.Errorf("parameter %s: negative duration %v (0 means never)", name, d)
		}
		return set(d), nil
	}
}

// numberParam reads a number, as strconv.ParseFloat does, for the option set sets.
func numberParam(set func(float64) Option) func(name, value string) (Option, error) {
	return func(name, value string) (Option, error) {
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return Option{}, fmt.Errorf("parameter %s: %q is not a number", name, value)
		}
		return set(f), nil
	}
}

// backgroundRefreshParam reads a number of workers; 0 turns background refresh off, which
// WithBackgroundRefresh does not take.
func backgroundRefreshParam(name, value string) (Option, error) {
	n, err := strconv.Atoi(value)
	if err != nil {
		return Option{}, fmt.Errorf("parameter %s: %q is not a whole number", name, value)
	}
	if n == 0 {
		return regionOption("background_refresh=0", func(c *config) error { c.background = 0; return nil }), nil
	}
	return WithBackgroundRefresh(n), nil
}

// failurePolicyParam reads "open" or "closed", in any case.
func failurePolicyParam(name, value string) (Option, error) {
	switch strings.ToLower(value) {
	case "open":
		return WithFailurePolicy(FailOpen), nil
	case "closed":
		return WithFailurePolicy(FailClosed), nil
	}
	return Option{}, fmt.Errorf("parameter %s: %q: want open or closed", name, value)
}

// circuitBreakerParam reads "min,max" ("100ms,5s"), or "off" in any case.
func circuitBreakerParam(name, value string) (Option, error) {
	if strings.EqualFold(value, "off") {
		return WithCircuitBreaker(0, 0), nil
	}
	min, max, ok := durationPair(value)
	if !ok {
		return Option{}, fmt.Errorf("parameter %s: %q: want two durations, min,max (say 100ms,5s), or off", name, value)
	}
	return WithCircuitBreaker(min, max), nil
}

// lockPollParam reads "min,max" ("1ms,100ms").
func lockPollParam(name, value string) (Option, error) {
	min, max, ok := durationPair(value)
	if !ok {
		return Option{}, fmt.Errorf("parameter %s: %q: want two durations, min,max (say 1ms,100ms)", name, value)
	}
	return WithLockPoll(min, max), nil
}

// durationPair reads "a,b", two durations as time.ParseDuration reads them.
func durationPair(value string) (a, b time.Duration, ok bool) {
	lo, hi, ok := strings.Cut(value, ",")
	a, err1 := time.ParseDuration(strings.TrimSpace(lo))
	b, err2 := time.ParseDuration(strings.TrimSpace(hi))
	return a, b, ok && err1 == nil && err2 == nil
}

// signedEntriesParam reads "id:base64-secret[,id:base64-secret...]", the first key signing.
func signedEntriesParam(name, value string) (Option, error) {
	sign, verify, err := parseSigningKeys(value)
	if err != nil {
		return Option{}, fmt.Errorf("parameter %s: %w", name, err) // never the secrets themselves
	}
	return WithSignedEntries(sign, verify...), nil
}
