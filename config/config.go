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
//
// JSON works as well (YAML is a superset of it). Environment variables override the document,
// one per field: DOGPILE_<REGION>_<FIELD>, the region's name and the field's in upper case with
// anything but letters and digits as "_": DOGPILE_USERS_BACKEND=memory:// or
// DOGPILE_USERS_EXPIRATION=1m. A backend from the environment replaces the document's backend
// and its arguments (the variable's URL carries its own parameters). A region may be configured
// from the environment alone.
//
// Errors name the field (regions.users.expiration) and nothing is half-configured: every region's
// settings are checked and every backend opened before any region is configured, and on an error
// the backends opened are closed and no region changes.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/internal/params"
	"github.com/dogpile-go/dogpile/region"
	"go.yaml.in/yaml/v3"
)

// Document is a configuration document: regions by name.
type Document struct {
	Regions map[string]Region `json:"regions"`
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

// Parse reads a document in YAML or JSON. Unknown fields are errors that name them.
func Parse(data []byte) (Document, error) {
	var generic any
	if err := yaml.Unmarshal(data, &generic); err != nil {
		return Document{}, fmt.Errorf("config: %w", err)
	}
	if generic == nil {
		return Document{}, nil // an empty document
	}
	// Through JSON: one decoder, strict about unknown fields, for both formats.
	js, err := json.Marshal(jsonable(generic))
	if err != nil {
		return Document{}, fmt.Errorf("config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var d Document
	if err := dec.Decode(&d); err != nil {
		return Document{}, fmt.Errorf("config: %w", err)
	}
	return d, nil
}

// jsonable turns what yaml.Unmarshal made into values encoding/json accepts (YAML maps may have
// keys of any type).
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
	}
	return v
}

// Load reads the document at path (an empty path: no document), applies the environment
// (os.Getenv) and configures regions; see Configure.
func Load(path string, regions ...*region.Region) error {
	var d Document
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if d, err = Parse(data); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return Configure(d, os.Getenv, regions...)
}

// Configure configures each of regions from the document entry of its name, overridden by the
// environment variables that getenv returns (nil: none). A region the document and the
// environment leave without a backend is an error, as is a document entry no region has that
// name (a typo would otherwise go unnoticed). All or nothing: on an error no region is
// configured.
func Configure(d Document, getenv func(string) string, regions ...*region.Region) error {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
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
	var unknown []string
	for name := range d.Regions {
		if byName[name] == nil {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config: regions.%s: no such region (regions: %s)", unknown[0], strings.Join(names(byName), ", "))
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
		c := overlay(d.Regions[r.Name()], r.Name(), getenv)
		b, opts, err := open(c, "regions."+r.Name())
		if err == nil {
			if err = regionParams.Check(r, b, opts...); err != nil {
				err = fmt.Errorf("config: regions.%s: %w", r.Name(), err)
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

// EnvName is the environment variable that overrides field of the region named name.
func EnvName(name, field string) string {
	up := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z':
				return r - 'a' + 'A'
			case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
				return r
			}
			return '_'
		}, s)
	}
	return "DOGPILE_" + up(name) + "_" + up(field)
}

// overlay applies the environment to c: the backend (with its URL's parameters, and without
// the document's arguments), and each field, kept apart in env so that open can order them.
func overlay(c Region, name string, getenv func(string) string) Region {
	if v := getenv(EnvName(name, "backend")); v != "" {
		// Another backend: the document's arguments were for its own, and the variable's URL
		// carries its parameters itself.
		c.Backend, c.Arguments, c.envBackend = v, nil, true
	}
	c.env = map[string]string{}
	for _, field := range regionParams.Names {
		if v := getenv(EnvName(name, field)); v != "" {
			c.env[field] = v
		}
	}
	return c
}

// open checks c and opens its backend; errors name the field under path. Settings apply from
// weakest to strongest: the backend URL's parameters and the document's fields (a URL from the
// environment wins over the document's fields; the document's fields over its own URL), then
// the environment's fields.
func open(c Region, path string) (backends.Backend, []region.Option, error) {
	if c.Backend == "" {
		return nil, nil, fmt.Errorf("config: %s.backend: missing (set it in the document or in %s)", path, EnvName(strings.TrimPrefix(path, "regions."), "backend"))
	}
	u, err := url.Parse(c.Backend)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, fmt.Errorf("config: %s.backend: invalid URL: %w", path, err)
	}
	q, err := url.ParseQuery(u.RawQuery) // u.Query() would drop what it cannot parse, silently
	if err != nil {
		return nil, nil, fmt.Errorf("config: %s.backend: invalid query: %w", path, err)
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
			return nil, nil, fmt.Errorf("config: %s.arguments.%s: want a string, number or boolean, not %T", path, k, v)
		}
	}
	fieldOpts := func(fields map[string]string, where string) ([]region.Option, error) {
		var opts []region.Option
		for _, name := range regionParams.Names {
			v := fields[name]
			if v == "" {
				continue
			}
			o, err := regionParams.Param(name, v)
			if err != nil {
				return nil, fmt.Errorf("config: %s.%s%s: %w", path, name, where, err)
			}
			opts = append(opts, o)
		}
		return opts, nil
	}
	docOpts, err := fieldOpts(c.fields(), "")
	if err != nil {
		return nil, nil, err
	}
	envOpts, err := fieldOpts(c.env, " (from the environment)")
	if err != nil {
		return nil, nil, err
	}
	// Region parameters in the URL itself, as ConfigureURL takes them.
	urlOpts, err := regionParams.FromQuery(q)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %s.backend: %w", path, err)
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
		return nil, nil, fmt.Errorf("config: %s.backend: %w", path, err)
	}
	return b, opts, nil
}
