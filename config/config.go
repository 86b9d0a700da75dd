// Package config configures regions from a document and the environment, so that one binary
// uses the memory backend in tests and Redis in production without a code change: dogpile.cache's
// configure_from_config.
//
// A document names regions; each gives a backend URL (backends.Open; the backend's package must
// be imported, as database/sql drivers are), arguments added to that URL's query, and the
// region's settings:
//
//	regions:
//	  users:
//	    backend: redis://cache:6379/0
//	    arguments: {prefix: "app:"}
//	    expiration: 10m
//	    lock_timeout: 5s
//	  sessions:
//	    backend: memory://
//	    arguments: {max_entries: 100000}
//	profiles:
//	  staging:
//	    regions:
//	      users: {backend: "redis://staging-cache:6379/0", expiration: 1m}
//
// JSON works as well (YAML is a superset of it). Environment variables override the document,
// one per field: DOGPILE_<REGION>_<FIELD>, the region's name and the field's in upper case with
// anything but letters and digits as "_": DOGPILE_USERS_BACKEND=memory:// or
// DOGPILE_USERS_EXPIRATION=1m. A backend from the environment replaces the document's backend
// and its arguments (the variable's URL carries its own parameters). A region may be configured
// from the environment alone.
//
// Many programs may share one document: Load reads the file that DOGPILE_CONFIG names when the
// program names none, DOGPILE_PROFILE selects a profile (a section for one environment, merged
// over the regions; see Profile), and a region of the document that the program does not declare
// is skipped with a warning. Options.Strict makes it an error, as it does a DOGPILE_ variable
// that names no region or field of the program's.
//
// Errors name the file, the line and the field (cache.yaml:7: regions.users.expiration), with the
// nearest valid name for a misspelt one, and nothing is half-configured: every region's settings
// are checked and every backend opened before any region is configured, and on an error the
// backends opened are closed and no region changes.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/internal/params"
	"github.com/dogpile-go/dogpile/region"
)

// Document is a configuration document: regions by name, and profiles that change them per
// environment.
type Document struct {
	Regions map[string]Region `json:"regions"`
	// Profiles are sections of the document by name, one per environment ("staging"): the one
	// selected (Options.Profile, or DOGPILE_PROFILE) is merged over Regions; see Profile.
	Profiles map[string]Profile `json:"profiles,omitempty"`

	file  string         // the file the document was read from, for errors; "" for none
	lines map[string]int // the line of each key by path ("regions.users.expiration"), for errors
}

// Region is one region's configuration. Fields left empty keep what the region was given in code
// (region.New's options).
type Region struct {
	// Backend is the backend's URL, as backends.Open reads it: "redis://host:6379/0",
	// "memory://", "file:///var/cache/app". It may carry region parameters in its query too,
	// as region.Region.ConfigureURL takes them.
	Backend string `json:"backend"`
	// Arguments are added to the backend URL's query: backend parameters (prefix, max_entries,
	// ...). Values may be strings, numbers or booleans.
	Arguments map[string]any `json:"arguments,omitempty"`

	Expiration        string   `json:"expiration,omitempty"`         // a duration: "10m"
	StorageTTL        string   `json:"storage_ttl,omitempty"`        // a duration
	LockTimeout       string   `json:"lock_timeout,omitempty"`       // a duration
	BackgroundRefresh *int     `json:"background_refresh,omitempty"` // workers; 0: off
	FailurePolicy     string   `json:"failure_policy,omitempty"`     // "open" or "closed"
	EarlyRefresh      *float64 `json:"early_refresh,omitempty"`      // XFetch's beta
	StaleIfError      string   `json:"stale_if_error,omitempty"`     // a duration
	Jitter            *float64 `json:"jitter,omitempty"`             // a fraction in [0, 1)
	// SharedInvalidation makes Invalidate reach every process of the fleet, polling at this
	// interval ("1s"); see region.WithSharedInvalidation.
	SharedInvalidation string `json:"shared_invalidation,omitempty"`
	// CreationTimeout bounds one creation ("1m"; "0s": no bound); see
	// region.WithCreationTimeout.
	CreationTimeout string `json:"creation_timeout,omitempty"`
	// SignedEntries signs and verifies the region's entries: "id:base64-secret[,...]", the first
	// key signs; see region.WithSignedEntries. Better given in the environment
	// (DOGPILE_<REGION>_SIGNED_ENTRIES) than written in a file.
	SignedEntries string `json:"signed_entries,omitempty"`
	// LocalCache and LocalMaxAge put an in-process tier of at most LocalCache decoded values,
	// each kept at most LocalMaxAge ("30s"), in front of the backend; see region.WithLocalCache.
	LocalCache  *int   `json:"local_cache,omitempty"`
	LocalMaxAge string `json:"local_max_age,omitempty"`

	src        source            // where in the document each field was set, for errors
	env        map[string]string // fields from the environment, by region parameter
	envBackend bool              // the backend URL came from the environment
}

// regionParams are the region parameters, which the fields of Region and the environment
// variables are named after, and the check of a region's settings: package region's own, which
// it provides through internal/params without exporting them.
var regionParams = params.Provided[*region.Region, region.Option]()

// fields are the settings of Region as region parameters, in the order errors report them.
func (c Region) fields() map[string]string {
	f := map[string]string{
		"expiration": c.Expiration, "storage_ttl": c.StorageTTL, "lock_timeout": c.LockTimeout,
		"failure_policy": c.FailurePolicy, "stale_if_error": c.StaleIfError,
		"shared_invalidation": c.SharedInvalidation, "creation_timeout": c.CreationTimeout,
		"signed_entries": c.SignedEntries, "local_max_age": c.LocalMaxAge,
	}
	if c.LocalCache != nil {
		f["local_cache"] = strconv.Itoa(*c.LocalCache)
	}
	if c.BackgroundRefresh != nil {
		f["background_refresh"] = strconv.Itoa(*c.BackgroundRefresh)
	}
	if c.EarlyRefresh != nil {
		f["early_refresh"] = strconv.FormatFloat(*c.EarlyRefresh, 'g', -1, 64)
	}
	if c.Jitter != nil {
		f["jitter"] = strconv.FormatFloat(*c.Jitter, 'g', -1, 64)
	}
	return f
}

// Options are how Load and Configure choose the profile and treat what the program does not
// expect. The zero Options is what the functions Load and Configure do.
type Options struct {
	// Strict makes errors of two things that are otherwise warnings: a region of the document
	// that none of the regions given is named after, and a DOGPILE_ environment variable that
	// names no field of a region given.
	Strict bool
	// Logger receives the warnings; nil: slog.Default().
	Logger *slog.Logger
	// Profile is the document's profile to merge over its regions; "": the one the environment
	// variable DOGPILE_PROFILE names, if any.
	Profile string
	// Env is the environment, "KEY=value" as os.Environ returns it: nil is os.Environ(). Of a
	// key given twice, the last value counts, as in os/exec.
	Env []string
}

// EnvFile is the environment variable naming the document that Load reads when its path is "".
const EnvFile = "DOGPILE_CONFIG"

// EnvProfile is the environment variable naming the document's profile to use, when
// Options.Profile is "".
const EnvProfile = "DOGPILE_PROFILE"

// Load reads the document at path (or, when path is "", the one DOGPILE_CONFIG names, if any),
// applies the environment (os.Environ) and configures regions: Options{}.Load.
func Load(path string, regions ...*region.Region) error {
	return Options{}.Load(path, regions...)
}

// Load reads the document at path (ReadFile), or, when path is "", the one that the environment
// variable DOGPILE_CONFIG names (EnvFile), or none when that is unset too; a path given wins over
// the variable, as a command-line flag wins over the environment. It then applies the
// environment and configures regions; see Options.Configure.
func (o Options) Load(path string, regions ...*region.Region) error {
	env := o.environ()
	getenv := lookup(env)
	var d Document
	if path == "" {
		path = getenv(EnvFile)
	}
	if path != "" {
		var err error
		if d, err = ReadFile(path); err != nil {
			return err
		}
	}
	return configure(d, o, getenv, env, regions)
}

// Configure configures each of regions from the document entry of its name, with the profile
// that the environment variable DOGPILE_PROFILE names merged over it, overridden by the
// environment variables that getenv returns (nil: none): Options.Configure with an environment
// that can be read but not listed, so that variables naming nothing go unreported.
func Configure(d Document, getenv func(string) string, regions ...*region.Region) error {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	return configure(d, Options{}, getenv, nil, regions)
}

// Configure configures each of regions from the document entry of its name, with the profile
// (Options.Profile, or DOGPILE_PROFILE) merged over it, overridden by the environment variables
// of Options.Env. Settings apply from weakest to strongest: the document's regions, the profile,
// the environment.
//
// A region the document and the environment leave without a backend is an error, as is a profile
// the document does not have. A document entry that no region is named after is skipped with a
// warning, and so is a DOGPILE_ variable that names no field of a region given; in strict mode
// both are errors. All or nothing: on an error no region is configured.
func (o Options) Configure(d Document, regions ...*region.Region) error {
	env := o.environ()
	return configure(d, o, lookup(env), env, regions)
}

// environ returns o.Env, or os.Environ() when it is nil.
func (o Options) environ() []string {
	if o.Env == nil {
		return os.Environ()
	}
	return o.Env
}

// lookup returns a getenv reading env, of which the last value of a key counts.
func lookup(env []string) func(string) string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) string { return m[k] }
}

// configure is Options.Configure; environ lists the variables getenv reads, nil when they
// cannot be listed.
func configure(d Document, o Options, getenv func(string) string, environ []string, regions []*region.Region) error {
	byName := make(map[string]*region.Region, len(regions))
	for _, r := range regions {
		if r == nil {
			return errors.New("config: nil region")
		}
		if _, dup := byName[r.Name()]; dup {
			return fmt.Errorf("config: two regions named %q", r.Name())
		}
		if r.Configured() {
			return fmt.Errorf("config: region %q: %w", r.Name(), region.ErrAlreadyConfigured)
		}
		byName[r.Name()] = r
	}
	profile, from := o.Profile, "Options.Profile"
	if profile == "" {
		profile, from = getenv(EnvProfile), EnvProfile
	}
	entries, err := d.withProfile(profile, from)
	if err != nil {
		return err
	}
	problems := append(unknownRegions(&d, entries, byName), unknownVariables(environ, byName)...)
	if o.Strict && len(problems) > 0 {
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = p.err
		}
		return errors.Join(errs...)
	}
	logger := cmp.Or(o.Logger, slog.Default())
	for _, p := range problems {
		logger.Warn(p.warning, p.attrs...)
	}

	type plan struct {
		r    *region.Region
		b    backends.Backend
		opts []region.Option
	}
	var plans []plan
	closeAll := func() {
		for _, p := range plans {
			if c, ok := backends.As[io.Closer](p.b); ok {
				_ = c.Close()
			}
		}
	}
	for _, r := range regions {
		c := overlay(entries[r.Name()], r.Name(), getenv)
		b, opts, err := open(&d, c, r.Name())
		if err == nil {
			if err = regionParams.Check(r, b, opts...); err != nil {
				err = d.wrap(c.src.entryPath(r.Name()), err)
				if cl, ok := backends.As[io.Closer](b); ok {
					_ = cl.Close()
				}
			}
		}
		if err != nil {
			closeAll()
			return err
		}
		plans = append(plans, plan{r, b, opts})
	}
	for i, p := range plans {
		if err := p.r.ConfigureWith(p.b, p.opts...); err != nil {
			// Only a region configured meanwhile by someone else gets here; the ones before it
			// are configured already and keep their backends.
			for _, q := range plans[i:] {
				if c, ok := backends.As[io.Closer](q.b); ok {
					_ = c.Close()
				}
			}
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}

func names(m map[string]*region.Region) []string {
	ns := make([]string, 0, len(m))
	for n := range m {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// open checks c, the region named name, and opens its backend; errors name the field and where
// it was set. Settings apply from weakest to strongest: the backend URL's parameters and the
// document's fields (a URL from the environment wins over the document's fields; the document's
// fields over its own URL), then the environment's fields.
func open(d *Document, c Region, name string) (backends.Backend, []region.Option, error) {
	backendErr := func(err error) error {
		if c.envBackend {
			return fromEnv(name, "backend", err)
		}
		return d.wrap(c.src.path(name, "backend"), err)
	}
	if c.Backend == "" {
		return nil, nil, d.wrap(c.src.path(name, "backend"), fmt.Errorf("missing (set it in the document or in %s)", EnvName(name, "backend")))
	}
	u, err := url.Parse(c.Backend)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, backendErr(fmt.Errorf("invalid URL: %w", err))
	}
	q, err := url.ParseQuery(u.RawQuery) // u.Query() would drop what it cannot parse, silently
	if err != nil {
		return nil, nil, backendErr(fmt.Errorf("invalid query: %w", err))
	}
	keys := make([]string, 0, len(c.Arguments))
	for k := range c.Arguments {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := c.Arguments[k].(type) {
		case string:
			q.Set(k, v)
		case bool:
			q.Set(k, strconv.FormatBool(v))
		case float64: // what JSON numbers decode to: 1000000, not 1e+06
			q.Set(k, strconv.FormatFloat(v, 'f', -1, 64))
		default:
			return nil, nil, d.wrap(c.src.path(name, "arguments."+k), fmt.Errorf("want a string, number or boolean, not %T", v))
		}
	}
	var docOpts, envOpts []region.Option
	fields := c.fields()
	for _, field := range regionParams.Names {
		if v := fields[field]; v != "" {
			o, err := regionParams.Param(field, v)
			if err != nil {
				return nil, nil, d.wrap(c.src.path(name, field), err)
			}
			docOpts = append(docOpts, o)
		}
		if v := c.env[field]; v != "" {
			o, err := regionParams.Param(field, v)
			if err != nil {
				return nil, nil, fromEnv(name, field, err)
			}
			envOpts = append(envOpts, o)
		}
	}
	// Region parameters in the URL itself, as ConfigureURL takes them.
	urlOpts, err := regionParams.FromQuery(q)
	if err != nil {
		return nil, nil, backendErr(err)
	}
	var opts []region.Option
	if c.envBackend {
		opts = append(append(append(opts, docOpts...), urlOpts...), envOpts...)
	} else {
		opts = append(append(append(opts, urlOpts...), docOpts...), envOpts...)
	}
	u.RawQuery = q.Encode()
	b, err := backends.Open(params.URLString(u))
	if err != nil {
		return nil, nil, backendErr(err)
	}
	return b, opts, nil
}
