// Command dogpile inspects a live cache backend, for operators debugging a production cache: it
// reads the entries the library stored (the envelope of package backends: created-at, creation
// time, flags, payload), deletes them, and prints what the backend can tell about itself.
//
//	dogpile get [-mangle sha1] [-json] [-raw] <backend-url> <key>
//	dogpile delete [-mangle ...] [-json] <backend-url> <key>
//	dogpile invalidate [-mangle ...] [-json] <backend-url> <key>...
//	dogpile invalidate -match <glob> [-dry-run] [-json] <redis-url>
//	dogpile stats [-limit n] [-json] <backend-url>
//	dogpile help [command]
//
// The backend URL is the one a program gives backends.Open (redis://, rediss://, memcached://,
// file://; memory:// and null:// are accepted but hold nothing in a fresh process). The key is the
// region's key, as memo or a View builds it (see package keys: "users.Load|i:42"); -mangle applies
// the region's key mangler first, so that the key can be typed unmangled.
//
// For example, against the Redis of a fleet whose region mangles keys with keys.SHA1:
//
//	$ dogpile get -mangle sha1 'redis://:secret@10.0.0.5:6379/0?prefix=app:' 'users.Load|i:42'
//	key:        users.Load|i:42
//	stored as:  3c0f...e1 (mangled: sha1)
//	created:    2026-11-22T16:50:01.123Z (age 4m2s)
//	creation:   182ms
//	size:       61 bytes (20-byte header, 41-byte payload)
//	flags:      none
//	format:     version 2
//	storage ttl: 23h55m58s
//	payload (JSON):
//	{
//	  "id": 42,
//	  "name": "Ada"
//	}
//
//	$ dogpile delete -mangle sha1 'redis://:secret@10.0.0.5:6379/0?prefix=app:' 'users.Load|i:42'
//	deleted users.Load|i:42 (it existed)
//	$ dogpile stats 'redis://:secret@10.0.0.5:6379/0?prefix=app:'
//
// Exit status: 0 on success, 1 on a failure (a backend error, a key not found by get, an entry
// that is not one the library wrote), 2 on a usage error (unknown command or flag, a bad URL,
// missing arguments). Output never shows the URL's user information (password or token).
//
// Invalidation of a whole region (region.Invalidate) is a timestamp kept by each running
// process, not something stored in the backend, so this command cannot do it: invalidate deletes
// entries (the keys given, or on Redis those matching a pattern), which makes every process
// create them again. Invalidation shared by the processes of a fleet is issue 10.
package main
