package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
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

	// Where the entries are: a document and a region in it, or a URL (and a region name).
	config string
	region string

	// How keys are written: memo's encoding of arguments, or as they are; and the mangler.
	fn     string
	types  string
	rawKey bool
	mangle string

	payload bool
	limit   int
	match   string
	dryRun  bool
	hard    bool
	soft    bool
	// allPrefixes lets -match run without a prefix, over the whole database.
	allPrefixes bool
}

func commonFlags(fs *flag.FlagSet, o *options) {
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of text")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up after this long (0: no limit)")
}

func sourceFlags(fs *flag.FlagSet, o *options) {
	commonFlags(fs, o)
	fs.StringVar(&o.config, "config", "", "the application's configuration `file` (package config: YAML or JSON); with -region")
	fs.StringVar(&o.region, "region", "", "the region's `name`: in the -config document (or DOGPILE_<NAME>_* variables),\n"+
		"or, with a backend URL, the name its processes announce under")
}

func keyFlags(fs *flag.FlagSet, o *options) {
	sourceFlags(fs, o)
	fs.StringVar(&o.fn, "fn", "", "the memo handle's `namespace`: the function's qualified name (example.com/app/users.Load),\n"+
		"or what memo.WithNamespace set; the arguments are the function's")
	fs.StringVar(&o.types, "types", "", "the Go `types` of the -fn arguments, separated by commas (default: guessed, int or string):\n"+argTypes)
	fs.BoolVar(&o.rawKey, "raw", false, "the argument is the region's key, already encoded ('users.Load|i:42'): a View's key, or a memo key as stored")
	fs.StringVar(&o.mangle, "mangle", "", "apply the region's key mangler to the key first: `steps` separated by commas,\n"+
		"applied in order (keys.Chain): sha1, sha1-over=N (keys.LengthConditional(N, keys.SHA1)), prefix=STR")
}

// whereUsage is how the source flags read in every command's help.
const whereUsage = `Where the entries are: -config app.yaml -region users takes the region's backend (its URL, and
arguments such as prefix=) and settings (signing keys, shared invalidation) from the
application's configuration document, with the DOGPILE_USERS_* environment variables over it,
as config.Load applies them; -region users alone takes them from the environment; or the first
argument is a backend URL, which may carry region parameters (region.ConfigureURL).`

var commands = []*command{
	{
		name: "get", args: "[<backend-url>] (-fn <namespace> <argument>... | -raw <key>)", minArgs: 0, maxArgs: -1,
		summary: "print an entry: created-at, age, creation time, size, flags and payload",
		help: `Get reads the entry stored under one key and prints its envelope: when it was created (RFC 3339)
and its age, how long its creation took, its size, its flags ("negative" is a cached "not
found"), its format version, the storage TTL left where the backend tells it (Redis), and the
payload: indented JSON when it is JSON (the default codec), else a quoted or hex preview.
A key that holds nothing is a failure (exit status 1, "not found"), as is a value that is not an
entry the library wrote (a region treats it as a miss). A signed entry shows its key id; the
signature is not checked.

` + whereUsage + `

` + keyFlagsUsage + `

Examples:
  dogpile get -config app.yaml -region users -fn example.com/app/users.Load 42
  dogpile get -config app.yaml -region users -raw 'example.com/app/users.Load|i:42'
  dogpile get 'redis://cache:6379/0?prefix=app:' -raw 'users|i:42'`,
		flags: func(fs *flag.FlagSet, o *options) {
			keyFlags(fs, o)
			fs.BoolVar(&o.payload, "payload", false, "write the payload's bytes to stdout as they are, nothing else\n(the stored bytes when they are not an entry)")
		},
		run: (*cli).get,
	},
	{
		name: "delete", args: "[<backend-url>] (-fn <namespace> <argument>... | -raw <key>)", minArgs: 0, maxArgs: -1,
		summary: "delete an entry, tell the region's processes to drop it, and say whether it existed",
		help: `Delete removes the entry stored under one key, as a handle's Invalidate (Region.Delete) does,
and says whether the key held an entry just before. Deleting an absent key is not a failure.

With -region, it deletes through the region, configured as the application configures it: on
a backend that stores conditionally (Redis, memcached, files) the entry is replaced by a
tombstone, which reads as absent, so that a creation in progress in some process does not store
its older value over the deletion; and on Redis it announces the key on the region's channel,
so that every process with a local cache (region.WithLocalCache) drops it at once. Without
-region (a URL alone) it deletes the key and announces nothing: processes with a local cache
serve the old value until it ages out of it (their local max age), and the output says so.
Other backends cannot announce; their processes' local caches likewise wait for the max age.

` + whereUsage + `

` + keyFlagsUsage + `

Examples:
  dogpile delete -config app.yaml -region users -fn example.com/app/users.Load 42
  dogpile delete 'redis://cache:6379/0?prefix=app:' -region users -raw 'users|i:42'`,
		flags: keyFlags,
		run:   (*cli).delete,
	},
	{
		name: "invalidate", args: "[<backend-url>] (-fn <namespace> <argument>... | -raw <key>... | -match <glob> | -hard | -soft)", minArgs: 0, maxArgs: -1,
		summary: "invalidate a whole region (-hard, -soft), or delete many keys, or on Redis the entries matching -match",
		help: `Invalidate makes every process of the region create entries again, in one of three ways.

-hard or -soft invalidates the whole region, as Region.Invalidate does with shared invalidation
(region.WithSharedInvalidation): it stores the time in the backend (the region's invalidation
marker, signed when the region signs its entries) and announces it on Redis. Every process that
follows the region's announcements (those with a local cache or shared invalidation) applies it
at once; the others that share invalidations read the marker at their next poll. -hard: entries
created before it are absent, and the next call for a key waits for its creation. -soft: they
are expired, and one caller per key regenerates while the others are served the old value.
Nothing is deleted. It needs -region, and processes without shared_invalidation in their
settings never read the marker (the output warns when the settings do not give it). The time is
this host's clock: clocks apart by d make the invalidation reach d too far or not far enough.

With keys, it deletes each of them as delete does (with -region, through the region: tombstones
and one announcement, so that processes drop them from their local caches at once), in one round
trip where the backend can. With -fn, each argument is the argument of one call of a function
of one argument; for functions of more, use delete.

With -match (Redis only), it deletes the entries among the keys under the prefix that match a
Redis glob, and with -region announces them. -match deletes only what the library wrote. In
batches (SCAN with COUNT 500), it reads each key's type and first bytes (one pipeline of TYPE and
GETRANGE), and deletes the keys that are strings starting with the entry envelope (magic "dp",
format version 1 or 2) with a script that checks each key again and unlinks it atomically, so
that a key changed since the check is left. It skips, and counts, keys of other types (lists,
hashes...), strings that are not entries (another program's values), and dogpile locks (deleting
a held one would let a second creator in). -dry-run lists the entries it would delete and
deletes nothing. Every run ends with a line "deleted N key(s) matching ...; skipped M not
dogpile entries, L lock(s)" (-json: count and skipped). Keys are printed quoted, as Go quotes
strings (bytes that are not UTF-8 as \xff); -json adds key_base64 for those. With -mangle sha1,
keys are hashes and -match cannot select them; list the keys instead.

A pattern with no prefix is refused (exit status 2, nothing read or deleted): when the backend
has no prefix= and the pattern starts with a wildcard ("*", "?", "["), it reaches every key of
the database, other applications' included. Put the regions' prefix in the URL or at the start
of the pattern, or say -all-prefixes to scan the whole database (entries only, as always). The
backend must be a single server: a node of a Redis Cluster is refused (exit status 1), since it
holds only some of the keys.

Exit status: 0 when the run completed, whatever it skipped; 1 on a backend error (the entries
deleted before it are counted in the message), or when the deletion or invalidation was done
but could not be announced; 2 on a usage error, the refusal above included.

` + whereUsage + `

` + keyFlagsUsage + `

Examples:
  dogpile invalidate -config app.yaml -region users -hard
  dogpile invalidate -config app.yaml -region users -fn example.com/app/users.Load 42 43 44
  dogpile invalidate -config app.yaml -region users -match 'example.com/app/users.Load|*' -dry-run`,
		flags: func(fs *flag.FlagSet, o *options) {
			keyFlags(fs, o)
			fs.BoolVar(&o.hard, "hard", false, "invalidate the whole region: entries created before now are absent (needs -region)")
			fs.BoolVar(&o.soft, "soft", false, "invalidate the whole region: entries created before now are expired (needs -region)")
			fs.StringVar(&o.match, "match", "", "delete the entries whose keys (after the prefix) match this Redis `glob`")
			fs.BoolVar(&o.dryRun, "dry-run", false, "with -match: list the entries that would be deleted, delete nothing")
			fs.IntVar(&o.limit, "limit", 0, "with -match: stop after this many entries (0: no limit)")
			fs.BoolVar(&o.allPrefixes, "all-prefixes", false, "with -match: allow a pattern that starts with a wildcard on a backend without prefix=,\n"+
				"that is, scan every key of the database (only dogpile entries are deleted)")
		},
		run: (*cli).invalidate,
	},
	{
		name: "stats", args: "[<backend-url>]", minArgs: 0, maxArgs: 1,
		summary: "print what the backend can tell about itself, and the region's stored invalidations",
		help: `Stats prints what can be known from outside the application's processes: on Redis, INFO's
memory, stats and keyspace figures and a count of the keys under the prefix with their sizes
(SCAN, bounded by -limit); on memcached, each server's "stats" (memcached cannot list keys, so
nothing per prefix); on the file backend, the entries in the directory and their bytes. With
-region, also the region's shared invalidations stored in the backend (-hard, -soft): when, and
how long ago. memory:// and null:// are in-process: a new process has nothing to inspect.

The region's hits, misses, creations and errors are counted in each process (region.Stats) and
are not stored anywhere this tool can read: Redis's keyspace_hits and keyspace_misses count
every client of the server, locks and other programs included, and say nothing of local caches.
To see the region's own, have the application publish them: Region.PublishExpvar (/debug/vars)
or the prometheus module's collector (github.com/dogpile-go/dogpile/prometheus).

` + whereUsage,
		flags: func(fs *flag.FlagSet, o *options) {
			sourceFlags(fs, o)
			fs.StringVar(&o.mangle, "mangle", "", "the region's key mangler, to find its stored invalidations (see dogpile help get)")
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

const intro = `dogpile inspects the entries of a live dogpile-go cache, and invalidates them.

Usage:
  dogpile <command> [flags] -config <file> -region <name> [key...]
  dogpile <command> [flags] <backend-url> [key...]

Commands:
`

const outro = `
-config and -region read the region's backend and settings from the application's
configuration document (package config), with its DOGPILE_<REGION>_* environment variables over
it; -region alone reads them from the environment. A backend URL is what the program gives
backends.Open: redis://[user:password@]host:port/db?prefix=app:, rediss://...,
redis+cluster://host:port?addr=host2:port&prefix=app:,
redis+sentinel://host:26379?master_name=mymaster&addr=host2:26379, memcached://h1:11211,h2:11211?prefix=app:,
file:///var/cache/app, memory://, null://.
A key is written as the application's code calls the function: -fn example.com/app/users.Load 42
(memo's namespace and the arguments), or as stored with -raw ('users.Load|i:42'); -mangle
applies the region's key mangler. Output never shows the URL's user information or a password
parameter (password=, sentinel_password=...): messages show them as xxxxx.

Exit status: 0 success, 1 failure (backend error, key not found, malformed entry, not announced), 2 usage.
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
