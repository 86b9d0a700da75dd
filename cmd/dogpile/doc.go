// Command dogpile inspects a live cache backend, for operators debugging a production cache: it
// reads the entries the library stored (the envelope of package backends: created-at, creation
// time, flags, payload), deletes them, and prints what the backend can tell about itself.
//
//	dogpile get [-mangle sha1] [-json] [-raw] <backend-url> <key>
//	dogpile delete [-mangle ...] [-json] <backend-url> <key>
//	dogpile invalidate [-mangle ...] [-json] <backend-url> <key>...
//	dogpile invalidate -match <glob> [-dry-run] [-limit n] [-all-prefixes] [-json] <redis-url>
//	dogpile stats [-limit n] [-json] <backend-url>
//	dogpile help [command]
//
// The backend URL is the one a program gives backends.Open (redis://, rediss://, redis+cluster://,
// redis+sentinel://, memcached://, file://; memory:// and null:// are accepted but hold nothing in
// a fresh process). The key is the
// region's key, as memo or a View builds it (see package keys: "users.Load|i:42"); -mangle applies
// the region's key mangler first, so that the key can be typed unmangled.
//
// For example, against the Redis of a fleet whose region mangles keys with keys.SHA1:
//
//	$ dogpile get -mangle sha1 'redis://:secret@10.0.0.5:6379/0?prefix=app:' 'users.Load|i64:42'
//	key:         users.Load|i64:42
//	stored as:   1c74cda34d4593358f7be1bdea182c1a661e6449
//	created:     2026-11-22T16:00:00Z (age 4m0s)
//	creation:    took 182ms
//	size:        42 bytes (20-byte header, 22-byte payload)
//	flags:       none
//	format:      version 2
//	storage ttl: 23h56m0s left
//	payload (JSON):
//	{
//	  "id": 42,
//	  "name": "Ada"
//	}
//	$ dogpile get -json -mangle sha1 'redis://:secret@10.0.0.5:6379/0?prefix=app:' 'users.Load|i64:42' | jq .age_ns
//	240000000000
//	$ dogpile delete -mangle sha1 'redis://:secret@10.0.0.5:6379/0?prefix=app:' 'users.Load|i64:42'
//	deleted "users.Load|i64:42" (stored as "1c74cda34d4593358f7be1bdea182c1a661e6449") (it existed)
//	$ dogpile stats 'redis://10.0.0.5:6379/0?prefix=app:'
//
// Where a region stores keys as they are (no mangler), invalidate can select them by pattern.
// It deletes only the library's entries (strings that start with the envelope), checked again
// atomically as they are deleted, and skips other programs' keys, other Redis types and locks,
// counting them; a pattern that reaches the whole database (no prefix in the URL or the pattern)
// is refused unless -all-prefixes says so:
//
//	$ dogpile invalidate -match 'users.Load|*' -dry-run 'redis://10.0.0.5:6379/0?prefix=app:'
//	would delete "users.Load|i64:42"
//	would delete 1 key(s) matching "users.Load|*" under redis://10.0.0.5:6379/0?prefix=app:; skipped 0 not dogpile entries, 0 lock(s)
//
// A cached "not found" (region.WithNegativeCaching) shows as "flags: negative: cached not found"
// with an empty payload. Example (in the tests) runs get and delete on a file backend.
//
// Exit status: 0 on success, 1 on a failure (a backend error, a key not found by get, an entry
// that is not one the library wrote), 2 on a usage error (unknown command or flag, a bad URL,
// missing arguments, a -match pattern without a prefix). Output never shows the URL's user
// information (password or token) or a password parameter: backends.Redact shows them as xxxxx.
//
// Invalidation of a whole region (region.Invalidate) is a timestamp kept by each running
// process, not something stored in the backend, so this command cannot do it: invalidate deletes
// entries (the keys given, or on Redis those matching a pattern), which makes every process
// create them again. Invalidation shared by the processes of a fleet is
// region.WithSharedInvalidation.
package main
