package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/keys"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed: backend error, key not found, malformed entry
	exitUsage   = 2 // the command could not run as given
)

// errNotFound is the failure of get on an absent key; it has a message of its own.
var errNotFound = errors.New("not found")

// usageError is a command line that cannot run: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// cli is one run of the tool: where it writes and what time it is. Tests build their own.
type cli struct {
	stdout, stderr io.Writer
	now            func() time.Time
}

// run runs the command line args (without the program name) and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr, now: time.Now}
	return c.run(ctx, args)
}

// command is a subcommand: its flags, its usage and what it does with its positional arguments.
type command struct {
	name    string
	args    string // positional arguments, for the usage line
	summary string
	help    string
	minArgs int
	maxArgs int // -1: any number
	flags   func(fs *flag.FlagSet, o *options)
	run     func(c *cli, ctx context.Context, o *options, args []string) error
}

// options are the flags of every command; each command defines those it takes.
type options struct {
	json    bool
	timeout time.Duration
	mangle  string
	raw     bool
	limit   int
	match   string
	dryRun  bool
	// allPrefixes lets -match run without a prefix, over the whole database.
	allPrefixes bool
}

func commonFlags(fs *flag.FlagSet, o *options) {
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of text")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up after this long (0: no limit)")
}

func keyFlags(fs *flag.FlagSet, o *options) {
	commonFlags(fs, o)
	fs.StringVar(&o.mangle, "mangle", "", "apply the region's key mangler to the key first: `steps` separated by commas,\n"+
		"applied in order (keys.Chain): sha1, sha1-over=N (keys.LengthConditional(N, keys.SHA1)), prefix=STR")
}

var commands = []*command{
	{
		name: "get", args: "<backend-url> <key>", minArgs: 2, maxArgs: 2,
		summary: "print an entry: created-at, age, creation time, size, flags and payload",
		help: `Get reads the entry stored under key and prints its envelope: when it was created (RFC 3339)
and its age, how long its creation took, its size, its flags ("negative" is a cached "not
found"), its format version, the storage TTL left where the backend tells it (Redis), and the
payload: indented JSON when it is JSON (the default codec), else a quoted or hex preview.
A key that holds nothing is a failure (exit status 1, "not found"), as is a value that is not an
entry the library wrote (a region treats it as a miss).`,
		flags: func(fs *flag.FlagSet, o *options) {
			keyFlags(fs, o)
			fs.BoolVar(&o.raw, "raw", false, "write the payload's bytes to stdout as they are, nothing else\n(the stored bytes when they are not an entry)")
		},
		run: (*cli).get,
	},
	{
		name: "delete", args: "<backend-url> <key>", minArgs: 2, maxArgs: 2,
		summary: "delete an entry, and say whether it existed",
		help: `Delete removes the entry stored under key. Deleting an absent key is not a failure; the output
says whether the key held an entry just before (read, then deleted: two round trips).`,
		flags: keyFlags,
		run:   (*cli).delete,
	},
	{
		name: "invalidate", args: "<backend-url> <key>...", minArgs: 1, maxArgs: -1,
		summary: "delete the entries of many keys, or on Redis the entries matching -match",
		help: `Invalidate deletes entries so that every process creates them again at its next call: the keys
given (in one round trip where the backend can), or, with -match, the entries among the keys
under the URL's prefix that match a Redis glob (Redis only).

-match deletes only what the library wrote. In batches (SCAN with COUNT 500), it reads each
key's type and first bytes (one pipeline of TYPE and GETRANGE), and deletes the keys that are
strings starting with the entry envelope (magic "dp", format version 1 or 2) with a script that
checks each key again and unlinks it atomically, so that a key changed since the check is left.
It skips, and counts, keys of other types (lists, hashes...), strings that are not entries
(another program's values), and dogpile locks (deleting a held one would let a second creator
in). -dry-run lists the entries it would delete and deletes nothing. Every run ends with a line
"deleted N key(s) matching ...; skipped M not dogpile entries, L lock(s)" (-json: count and
skipped). Keys are printed quoted, as Go quotes strings (bytes that are not UTF-8 as \xff);
-json adds key_base64 for those.

A pattern with no prefix is refused (exit status 2, nothing read or deleted): when the URL has
no prefix= and the pattern starts with a wildcard ("*", "?", "["), it reaches every key of the
database, other applications' included. Put the regions' prefix in the URL or at the start of
the pattern, or say -all-prefixes to scan the whole database (entries only, as always).

The URL must name a single server: a node of a Redis Cluster is refused (exit status 1), since
it holds only some of the keys.

Exit status: 0 when the run completed, whatever it skipped; 1 on a backend error (the entries
deleted before it are counted in the message); 2 on a usage error, the refusal above included.

It does not invalidate a region: region.Invalidate is a timestamp each running process keeps
in memory (shared through the backend with region.WithSharedInvalidation), which a command
cannot reach. With -mangle sha1, keys are hashes and -match cannot select them; list the keys
instead.`,
		flags: func(fs *flag.FlagSet, o *options) {
			keyFlags(fs, o)
			fs.StringVar(&o.match, "match", "", "delete the entries whose keys (after the URL's prefix) match this Redis `glob`")
			fs.BoolVar(&o.dryRun, "dry-run", false, "with -match: list the entries that would be deleted, delete nothing")
			fs.IntVar(&o.limit, "limit", 0, "with -match: stop after this many entries (0: no limit)")
			fs.BoolVar(&o.allPrefixes, "all-prefixes", false, "with -match: allow a pattern that starts with a wildcard on a URL without prefix=,\n"+
				"that is, scan every key of the database (only dogpile entries are deleted)")
		},
		run: (*cli).invalidate,
	},
	{
		name: "stats", args: "<backend-url>", minArgs: 1, maxArgs: 1,
		summary: "print what the backend can tell about itself",
		help: `Stats prints what the backend can tell: on Redis, INFO's memory, stats and keyspace figures and
a count of the keys under the URL's prefix with their sizes (SCAN, bounded by -limit); on
memcached, each server's "stats" (memcached cannot list keys, so nothing per prefix); on the
file backend, the entries in the directory and their bytes. memory:// and null:// are
in-process: a new process has nothing to inspect.`,
		flags: func(fs *flag.FlagSet, o *options) {
			commonFlags(fs, o)
			fs.IntVar(&o.limit, "limit", 100000, "Redis: scan at most this many keys")
		},
		run: (*cli).stats,
	},
}

func lookup(name string) *command {
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

const intro = `dogpile inspects a live dogpile-go cache backend.

Usage:
  dogpile <command> [flags] <backend-url> [key...]

Commands:
`

const outro = `
The backend URL is what the program gives backends.Open: redis://[user:password@]host:port/db?prefix=app:,
rediss://..., redis+cluster://host:port?addr=host2:port&prefix=app:,
redis+sentinel://host:26379?master_name=mymaster&addr=host2:26379, memcached://h1:11211,h2:11211?prefix=app:,
file:///var/cache/app, memory://, null://.
The key is the region's key (see package keys: "users.Load|i:42"); -mangle applies the region's
mangler to it first. Output never shows the URL's user information or a password parameter
(password=, sentinel_password=...): messages show them as xxxxx.

Exit status: 0 success, 1 failure (backend error, key not found, malformed entry), 2 usage.
Run "dogpile help <command>" for a command's flags.
`

func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, intro)
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintf(w, "  %-11s %s\n", "help", "print this, or a command's help")
	fmt.Fprint(w, outro)
}

func (c *cli) commandUsage(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "Usage: dogpile %s [flags] %s\n\n%s\n\nFlags:\n", cmd.name, cmd.args, cmd.help)
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	cmd.flags(fs, new(options))
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func (c *cli) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		c.usage(c.stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && args[0] == "help" {
			cmd := lookup(args[1])
			if cmd == nil {
				fmt.Fprintf(c.stderr, "dogpile: help: unknown command %q\n", args[1])
				return exitUsage
			}
			c.commandUsage(c.stdout, cmd)
			return exitOK
		}
		c.usage(c.stdout)
		return exitOK
	}
	cmd := lookup(args[0])
	if cmd == nil {
		fmt.Fprintf(c.stderr, "dogpile: unknown command %q\n\n", args[0])
		c.usage(c.stderr)
		return exitUsage
	}
	o := new(options)
	fs := flag.NewFlagSet("dogpile "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd.flags(fs, o)
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		c.commandUsage(c.stdout, cmd)
		return exitOK
	}
	if err == nil && (len(pos) < cmd.minArgs || cmd.maxArgs >= 0 && len(pos) > cmd.maxArgs) {
		err = usagef("want %s, got %d argument(s)", cmd.args, len(pos))
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "dogpile %s: %v\n", cmd.name, err)
		fmt.Fprintf(c.stderr, "usage: dogpile %s [flags] %s (dogpile help %s)\n", cmd.name, cmd.args, cmd.name)
		return exitUsage
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	err = cmd.run(c, ctx, o, pos)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "dogpile %s: %v\n", cmd.name, err)
		return exitUsage
	default:
		fmt.Fprintf(c.stderr, "dogpile %s: %v\n", cmd.name, err)
		return exitFailure
	}
}

// parseInterspersed parses flags anywhere among the positional arguments, as operators type
// them ("dogpile get URL KEY -json"); after "--" every argument is positional, for keys that
// start with '-'.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// target is an opened backend and what the tool knows of its URL.
type target struct {
	backend backends.Backend
	url     *url.URL // parsed; never printed as it is (see shown)
	prefix  string   // the prefix query parameter (Redis, memcached), or ""
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

// open opens the backend of rawURL. A URL that does not parse, names no registered backend or is
// refused by its backend is a usage error: the command line is wrong, nothing was tried.
//
// A file:// URL must name a directory that exists: backends.Open would create it, and an
// operator's typo should not leave an empty cache behind. Its bounds (max_size, max_entries) are
// dropped: with them, opening the backend scans the directory and may run an eviction pass, and a
// tool that only looks must not remove entries.
func open(rawURL string) (*target, error) {
	openURL := rawURL
	if u, err := url.Parse(rawURL); err == nil && u.Scheme == "file" {
		if dir := fileDir(u); dir != "" {
			if _, err := os.Stat(dir); err != nil {
				return nil, fmt.Errorf("file backend: %w", err)
			}
			// Opening a directory makes it a cache (data/, locks/, evict.lock): a typo one level
			// up, or $HOME, must not become one. A cache has its data directory already.
			if fi, err := os.Stat(filepath.Join(dir, "data")); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("file backend: %s is not a dogpile file cache (it has no data directory)", dir)
			}
		}
		if q, err := url.ParseQuery(u.RawQuery); err == nil && (q.Has("max_size") || q.Has("max_entries")) {
			q.Del("max_size")
			q.Del("max_entries")
			u.RawQuery = q.Encode()
			openURL = u.String()
		}
	}
	b, err := backends.Open(openURL) // its errors redact the user information
	if err != nil {
		return nil, &usageError{msg: err.Error()}
	}
	u, err := backends.ParseURL(rawURL) // Open parsed it already; its errors are redacted
	if err != nil {
		return nil, &usageError{msg: err.Error()}
	}
	return &target{backend: b, url: u, prefix: u.Query().Get("prefix")}, nil
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

func (t *target) close() {
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

// parseMangler builds the mangler of a -mangle value (see keyFlags).
func parseMangler(spec string) (keys.Mangler, error) {
	if spec == "" || spec == "none" {
		return nil, nil
	}
	var steps []keys.Mangler
	for _, step := range strings.Split(spec, ",") {
		name, arg, hasArg := strings.Cut(step, "=")
		switch {
		case name == "sha1" && !hasArg:
			steps = append(steps, keys.SHA1)
		case name == "sha1-over" && hasArg:
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 {
				return nil, usagef("-mangle %q: sha1-over=%q: want a length in bytes", spec, arg)
			}
			steps = append(steps, keys.LengthConditional(n, keys.SHA1))
		case name == "prefix" && hasArg:
			steps = append(steps, keys.Prefix(arg))
		default:
			return nil, usagef("-mangle %q: unknown step %q (want sha1, sha1-over=N or prefix=STR, separated by commas)", spec, step)
		}
	}
	return keys.Chain(steps...), nil
}

// storedKey returns the key the backend stores for the region key key under the -mangle spec.
func storedKey(spec, key string) (string, error) {
	if key == "" {
		return "", usagef("empty key")
	}
	m, err := parseMangler(spec)
	if err != nil || m == nil {
		return key, err
	}
	return m(key), nil
}
