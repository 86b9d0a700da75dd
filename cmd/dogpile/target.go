package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/config"
	"github.com/dogpile-go/dogpile/keys"
	"github.com/dogpile-go/dogpile/region"
)

// target is an opened backend, what the tool knows of its URL, and, when the command line names
// one (-region), the region whose entries it holds.
type target struct {
	backend backends.Backend
	url     *url.URL // parsed; never printed as it is (see shown)
	prefix  string   // the prefix query parameter (Redis, memcached), or ""
	mangler keys.Mangler

	// region is the named region, configured as the application configures it (nil without
	// -region): deleting and invalidating through it sends what a handle's calls send.
	region *region.Region
	// shared says whether the application's settings give the region shared invalidation
	// (shared_invalidation in the document, the environment or the URL).
	shared bool

	mu      sync.Mutex // guards reports: the region's error handler runs on its goroutines too
	reports []error    // what the region reported (WithErrorHandler)
}

// regionUse is what a command does with the region beyond reading its backend.
type regionUse int

const (
	readOnly  regionUse = iota // get, stats
	announce                   // delete, invalidate: writes are announced to other processes
	shareMark                  // invalidate -hard/-soft: the invalidation is stored and announced
)

// splitSource splits the positional arguments into the backend URL, if the command line gives
// one, and the rest (the keys). With -config there is none; without, the first argument is the
// URL, except when -region is given and the first argument is not a URL ("://"): then the
// environment alone configures the region (DOGPILE_<REGION>_BACKEND), as config.Load("") does.
func splitSource(o *options, args []string) (rawURL string, rest []string, err error) {
	switch {
	case o.config != "":
		if o.region == "" {
			return "", nil, usagef("-config needs -region: the name of the region in the document")
		}
		return "", args, nil
	case o.region != "" && (len(args) == 0 || !strings.Contains(args[0], "://")):
		return "", args, nil
	case len(args) == 0:
		return "", nil, usagef("no backend: give -config <file> -region <name>, or a backend URL first")
	}
	return args[0], args[1:], nil
}

// openTarget opens where a command's entries are: the backend of rawURL (see splitSource), or
// the region -region names, configured from the -config document and the environment.
func (c *cli) openTarget(o *options, rawURL string, use regionUse) (*target, error) {
	m, err := parseMangler(o.mangle)
	if err != nil {
		return nil, err
	}
	if rawURL != "" {
		return c.openURL(o, rawURL, use, m)
	}
	return c.openConfig(o, use, m)
}

// openURL opens the backend of rawURL, configuring the region -region names on it when given (the
// URL may then carry region parameters, as region.ConfigureURL reads them). A URL that does not
// parse, names no registered backend or is refused by its backend is a usage error: the command
// line is wrong, nothing was tried.
func (c *cli) openURL(o *options, rawURL string, use regionUse, m keys.Mangler) (*target, error) {
	openURL, err := lookOnly(rawURL)
	if err != nil {
		return nil, err
	}
	t := &target{mangler: m}
	if o.region == "" {
		if t.backend, err = backends.Open(openURL); err != nil { // its errors redact the user information
			return nil, &usageError{msg: err.Error()}
		}
	} else {
		t.url, _ = url.Parse(openURL) // for newRegion; nil if it does not parse, as ConfigureURL says
		r := t.newRegion(o.region, use)
		if err := r.ConfigureURL(openURL); err != nil { // so do its
			return nil, &usageError{msg: err.Error()}
		}
		t.region, t.backend = r, r.Backend()
	}
	u, err := backends.ParseURL(rawURL) // opened already: it parses; its errors are redacted
	if err != nil {
		t.close()
		return nil, &usageError{msg: err.Error()}
	}
	t.url, t.prefix = u, u.Query().Get("prefix")
	t.shared = u.Query().Has("shared_invalidation")
	return t, nil
}

// openConfig configures the region -region names from the document -config names (none: the
// environment alone), through package config, as the application does: the backend and its
// arguments, and the region's settings (signing keys, shared invalidation, timeouts).
func (c *cli) openConfig(o *options, use regionUse, m keys.Mangler) (*target, error) {
	var doc config.Document
	where := "the environment"
	if o.config != "" {
		data, err := os.ReadFile(o.config)
		if err != nil {
			return nil, &usageError{msg: err.Error()}
		}
		if doc, err = config.Parse(data); err != nil {
			return nil, &usageError{msg: fmt.Sprintf("%s: %v", o.config, err)}
		}
		where = o.config
	}
	name := o.region
	entry, inDoc := doc.Regions[name]
	envBackend := os.Getenv(config.EnvName(name, "backend"))
	if !inDoc && envBackend == "" {
		known := make([]string, 0, len(doc.Regions))
		for n := range doc.Regions {
			known = append(known, n)
		}
		slices.Sort(known)
		list := "none"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		return nil, usagef("no region %q in %s (regions: %s; %s may configure it too)", name, where, list, config.EnvName(name, "backend"))
	}
	// The URL the region's backend opens, for what the tool shows and checks; package config
	// builds the same from the document (the backend URL with its arguments in the query), or
	// takes the environment's URL as it is.
	shownURL := envBackend
	if shownURL == "" {
		u, err := url.Parse(entry.Backend)
		if err != nil {
			return nil, usagef("%s: regions.%s.backend: %v", where, name, err)
		}
		q := u.Query()
		for k, v := range entry.Arguments {
			switch v := v.(type) {
			case float64:
				q.Set(k, strconv.FormatFloat(v, 'f', -1, 64))
			default:
				q.Set(k, fmt.Sprint(v))
			}
		}
		u.RawQuery = q.Encode()
		shownURL = u.String()
	}
	u, err := backends.ParseURL(shownURL)
	if err != nil {
		return nil, usagef("%s: regions.%s.backend: %v", where, name, err)
	}
	getenv := os.Getenv
	if u.Scheme == "file" {
		// A tool that only looks must not create the directory or run an eviction pass: check the
		// directory, and drop the bounds wherever they are written.
		if _, err := lookOnly(shownURL); err != nil {
			return nil, err
		}
		if envBackend != "" {
			bare, _ := lookOnly(envBackend)
			getenv = func(k string) string {
				if k == config.EnvName(name, "backend") {
					return bare
				}
				return os.Getenv(k)
			}
		} else {
			entry.Backend, _ = lookOnly(entry.Backend)
			entry.Arguments = maps(entry.Arguments, "max_size", "max_entries")
		}
	}
	t := &target{url: u, prefix: u.Query().Get("prefix"), mangler: m}
	t.shared = entry.SharedInvalidation != "" || os.Getenv(config.EnvName(name, "shared_invalidation")) != "" ||
		u.Query().Has("shared_invalidation")
	r := t.newRegion(name, use)
	one := config.Document{}
	if inDoc {
		one.Regions = map[string]config.Region{name: entry}
	}
	if err := config.Configure(one, getenv, r); err != nil {
		return nil, &usageError{msg: fmt.Sprintf("%s: %v", where, err)}
	}
	t.region, t.backend = r, r.Backend()
	return t, nil
}

// maps returns m without the keys drop, as a copy.
func maps(m map[string]any, drop ...string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if !slices.Contains(drop, k) {
			out[k] = v
		}
	}
	return out
}

// announceAge is how long the tool's region keeps what it writes in its local cache. The tool
// never reads from it: the local cache is there because a region announces its writes to other
// processes only when it has one (region.WithLocalCache).
const announceAge = time.Second

// newRegion returns the region the tool configures as the application does, with the key
// mangler of -mangle, reports collected rather than logged, and what use needs: a local cache so
// that its deletions are announced, shared invalidation so that Invalidate stores and announces
// its marker (the application's own interval replaces this one when it sets it).
func (t *target) newRegion(name string, use regionUse) *region.Region {
	opts := []region.Option{
		region.WithLogger(slog.New(slog.DiscardHandler)),
		region.WithErrorHandler(func(_ context.Context, err error) {
			t.mu.Lock()
			t.reports = append(t.reports, err)
			t.mu.Unlock()
		}),
	}
	if t.mangler != nil {
		opts = append(opts, region.WithKeyMangler(t.mangler))
	}
	if use >= announce && (t.url == nil || !t.inProcess()) { // refused over memory://: never read
		opts = append(opts, region.WithLocalCache(memory.New(), announceAge))
	}
	if use == shareMark {
		opts = append(opts, region.WithSharedInvalidation(time.Hour))
	}
	return region.New(name, opts...)
}

// takeReports returns what the region reported since the last call.
func (t *target) takeReports() []error {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.reports
	t.reports = nil
	return r
}

// warn prints what the region reported while it was being configured (a subscription that
// failed, a stored invalidation that did not verify): the command goes on.
func (c *cli) warn(cmd string, t *target) {
	for _, err := range t.takeReports() {
		fmt.Fprintf(c.stderr, "dogpile %s: warning: %v\n", cmd, err)
	}
}

// notifies reports whether the backend can announce to other processes (backends.Notifier).
func (t *target) notifies() bool {
	_, ok := backends.As[backends.Notifier](t.backend)
	return ok
}

// storedKey returns the key the backend stores for the region key key (before its prefix).
func (t *target) storedKey(key string) string {
	if t.mangler == nil {
		return key
	}
	return t.mangler(key)
}

// lookOnly checks a file:// URL for a tool that only looks, and returns the URL to open: it must
// name a directory that exists (backends.Open would create it, and an operator's typo should not
// leave an empty cache behind) and is a cache (has its data directory: a typo one level up, or
// $HOME, must not become one); its bounds (max_size, max_entries) are dropped, since with them
// opening the backend scans the directory and may run an eviction pass. Other URLs are returned
// as they are.
func lookOnly(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "file" {
		return rawURL, nil
	}
	if dir := fileDir(u); dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return "", fmt.Errorf("file backend: %w", err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "data")); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("file backend: %s is not a dogpile file cache (it has no data directory)", dir)
		}
	}
	if q, err := url.ParseQuery(u.RawQuery); err == nil && (q.Has("max_size") || q.Has("max_entries")) {
		q.Del("max_size")
		q.Del("max_entries")
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return rawURL, nil
}

// shown is the URL as output shows it: scheme, host and path, without user information or
// query parameters other than prefix.
func (t *target) shown() string {
	u := url.URL{Scheme: t.url.Scheme, Host: t.url.Host, Path: t.url.Path, Opaque: t.url.Opaque}
	s := u.String()
	if t.prefix != "" {
		p := t.prefix
		if strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:._-/{}|") != "" {
			p = url.QueryEscape(p) // escaped only when it must be: "app:" reads better than "app%3A"
		}
		s += "?prefix=" + p
	}
	return s
}

// fileDir is the directory of a file:// URL, read as package file's Open reads it.
func fileDir(u *url.URL) string {
	if u.Opaque != "" {
		if d, err := url.PathUnescape(u.Opaque); err == nil {
			return d
		}
		return u.Opaque
	}
	return u.Path
}

// close closes the region (which closes its backend), or the backend.
func (t *target) close() {
	if t.region != nil {
		_ = t.region.Close()
		return
	}
	if cl, ok := backends.As[io.Closer](t.backend); ok {
		_ = cl.Close()
	}
}

// inProcess reports whether the backend keeps its entries in the memory of the process that
// opened it, so that a new process finds nothing.
func (t *target) inProcess() bool {
	return t.url.Scheme == "memory" || t.url.Scheme == "null"
}

func (t *target) nothingHere() error {
	return fmt.Errorf("%s:// keeps entries in the memory of the process that uses it: a new process, such as this one, has none to inspect", t.url.Scheme)
}
