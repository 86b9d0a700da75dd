// Command dogpile inspects and invalidates the entries of a live cache, for operators debugging a
// production cache: it reads the entries the library stored (the envelope of package backends:
// created-at, creation time, flags, payload), deletes them, invalidates whole regions, and prints
// what the backend can tell about itself.
//
//	dogpile get [-json] [-payload] <where> <key>
//	dogpile delete [-json] <where> <key>
//	dogpile invalidate [-json] <where> <key>...
//	dogpile invalidate -hard|-soft [-json] <where>
//	dogpile invalidate -match <glob> [-dry-run] [-limit n] [-all-prefixes] [-json] <where>
//	dogpile stats [-limit n] [-json] <where>
//	dogpile help [command]
//
// where is the application's region: -config app.yaml -region users reads its backend (URL and
// arguments, such as prefix=) and its settings (signing keys, shared invalidation) from the
// configuration document the application gives package config, with the DOGPILE_USERS_*
// environment variables over it; -region users alone reads them from the environment; or a
// backend URL, as a program gives backends.Open (redis://, rediss://, redis+cluster://,
// redis+sentinel://, memcached://, file://; memory:// and null:// hold nothing in a fresh
// process), with -region naming the region whose processes to tell.
//
// key is written as the application's code calls the function: -fn and the memo handle's
// namespace (the function's qualified name, or memo.WithNamespace's), then the arguments,
// encoded as memo encodes them (keys.Default), their Go types guessed (int or string) or given by
// -types. -raw takes a key already encoded ("users.Load|i:42", a View's key). The key mangler is
// code, not configuration: -mangle applies it (sha1, sha1-over=N, prefix=STR).
//
// Given the region, delete and invalidate go through it, configured as the application
// configures it: deletions are what a handle's Invalidate does (tombstones where the backend
// stores conditionally), and on Redis they are announced on the region's channel, so that every
// process with a local cache (region.WithLocalCache) drops the keys at once instead of serving
// them until its local max age. invalidate -hard and -soft store the region's shared invalidation
// marker and announce it, as Region.Invalidate does with region.WithSharedInvalidation. The
// region's hit and miss counters live in each process (region.Stats); stats says so, and points
// to Region.PublishExpvar and the prometheus module.
//
// For example, against the Redis of a fleet whose region mangles keys with keys.SHA1:
//
//	$ dogpile get -config app.yaml -region users -mangle sha1 -fn users.Load -types int64 42
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
//	$ dogpile get -json -config app.yaml -region users -mangle sha1 -raw 'users.Load|i64:42' | jq .age_ns
//	240000000000
//	$ dogpile delete -config app.yaml -region users -mangle sha1 -fn users.Load -types int64 42
//	deleted "users.Load|i64:42" (stored as "1c74cda34d4593358f7be1bdea182c1a661e6449") (it existed)
//	announced to the processes of region "users": those with a local cache drop it at once
//	$ dogpile invalidate -config app.yaml -region users -hard
//	invalidated region "users" (hard): entries created before 2026-11-22T16:04:00Z are absent
//	stored in redis://10.0.0.5:6379/0?prefix=app: and announced: the processes that follow the region apply it now
//	$ dogpile stats -config app.yaml -region users
//
// Where a region stores keys as they are (no mangler), invalidate can select them by pattern.
// It deletes only the library's entries (strings that start with the envelope), checked again
// atomically as they are deleted, and skips other programs' keys, other Redis types and locks,
// counting them; a pattern that reaches the whole database (no prefix in the URL or the pattern)
// is refused unless -all-prefixes says so:
//
//	$ dogpile invalidate -match 'users.Load|*' -dry-run -config app.yaml -region users
//	would delete "users.Load|i64:42"
//	would delete 1 key(s) matching "users.Load|*" under redis://10.0.0.5:6379/0?prefix=app:; skipped 0 not dogpile entries, 0 lock(s)
//
// A cached "not found" (region.WithNegativeCaching) shows as "flags: negative: cached not found"
// with an empty payload. Example (in the tests) runs get and delete on a file backend.
//
// Exit status: 0 on success, 1 on a failure (a backend error, a key not found by get, an entry
// that is not one the library wrote, a deletion or invalidation done but not announced), 2 on a usage error (unknown command or flag, a bad URL,
// missing arguments, a -match pattern without a prefix). Output never shows the URL's user
// information (password or token) or a password parameter: backends.Redact shows them as xxxxx.
//
// A deletion given only a backend URL, without -region, announces nothing: the output says so.
package main
