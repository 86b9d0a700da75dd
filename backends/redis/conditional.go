package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	goredis "github.com/redis/go-redis/v9"
)

var (
	_ backends.ConditionalSetter      = (*Backend)(nil)
	_ backends.ConditionalMultiSetter = (*Backend)(nil)
)

// setIfNotNewerScript stores the entry ARGV[1] under KEYS[1], with PX ARGV[2] milliseconds (none
// when ARGV[2] is "0"), unless KEYS[1] holds an entry whose created-at is later than ARGV[1]'s;
// it returns 1 if it stored, 0 if not. An entry is what backends.EntryCreated reads: magic "dp",
// format version 1 (12 bytes or more) or 2 (20 or more), created-at a big-endian int64 at bytes 4
// to 11. The script reads the header only (GETRANGE of the first 20 bytes, "" for an absent key),
// not the value behind it. Anything else held, another Redis type (a list) included, is replaced,
// as SET replaces it.
//
// The created-at bytes are compared one by one with string.byte, most significant first, the first
// with its sign bit flipped so that negative times sort before positive ones: a Lua number (a
// double) cannot hold a time in nanoseconds exactly, and a string comparison (<) may follow the
// server's locale (strcoll). ARGV[1] is an entry (the caller checks), so its bytes 5 to 12 exist.
var setIfNotNewerScript = goredis.NewScript(`
local new = ARGV[1]
local cur = redis.pcall("GETRANGE", KEYS[1], 0, 19)
if type(cur) == "string" then
	local n, version = #cur, string.byte(cur, 3)
	if n >= 12 and string.byte(cur, 1) == 100 and string.byte(cur, 2) == 112 and
		(version == 1 or (version == 2 and n >= 20)) then
		for i = 5, 12 do
			local held, mine = string.byte(cur, i), string.byte(new, i)
			if i == 5 then
				held, mine = (held + 128) % 256, (mine + 128) % 256
			end
			if held > mine then
				return 0
			end
			if held < mine then
				break
			end
		end
	end
end
if ARGV[2] == "0" then
	redis.call("SET", KEYS[1], new)
else
	redis.call("SET", KEYS[1], new, "PX", ARGV[2])
end
return 1`)

// errNotEntry is the error of a conditional store given a value that is not an entry: without a
// created-at there is nothing to compare, and storing it unconditionally would defeat the check.
var errNotEntry = fmt.Errorf("%w: the value is not an entry, so it has no created-at to compare", backends.ErrMalformed)

// SetIfNotNewer stores value, an entry (backends.EncodeEntry), under key with Set's ttl rule,
// unless key holds an entry whose created-at is later than value's; stored reports whether it
// did. A script (EVALSHA, and EVAL once on a server that has not seen it) reads the header of the
// held value and writes the new one in one step on the server: one round trip, atomic against
// every other write of the key, in any process. A key holding bytes that are not an entry, or another Redis
// type (a list, which Get reports as an error), is overwritten, as Set overwrites it. A value that
// is not an entry is an error wrapping backends.ErrMalformed, and nothing is sent.
//
// It works on a single server, Sentinel, a Cluster and a Ring: the script names one key.
func (b *Backend) SetIfNotNewer(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if _, ok := backends.EntryCreated(value); !ok {
		return false, fmt.Errorf("redis: setifnotnewer %q: %w", key, errNotEntry)
	}
	n, err := setIfNotNewerScript.Run(ctx, b.client, []string{b.prefix + key}, value, b.storageTTL(ttl).Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("redis: setifnotnewer %q: %w", key, err)
	}
	return n == 1, nil
}

// SetMultiIfNotNewer applies SetIfNotNewer to every item, each on its own, with SetIfNotNewer's
// script for each, all in one pipeline: one round trip (one per node on a Cluster or Ring; the
// commands a server answers with NOSCRIPT go again, with EVAL, in a second one), as TryLockMulti
// does. It returns the keys not stored because a newer entry was held, sorted. The stores are not
// atomic as a group. Items whose value is not an entry are not sent, and the others are: the error
// then wraps backends.ErrMalformed. On another failure some items may have been stored; the
// error is the first command's that failed, returned with the keys known to be refused. Empty
// items do no I/O. Like SetMulti, it sends every item it is given: regions split larger batches
// by MaxBatch.
func (b *Backend) SetMultiIfNotNewer(ctx context.Context, items map[string][]byte, ttl time.Duration) ([]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(items))
	redisKeys := make([]string, 0, len(items))
	values := make([][]byte, 0, len(items))
	var errs []error
	for key, value := range items {
		if _, ok := backends.EntryCreated(value); !ok {
			errs = append(errs, fmt.Errorf("redis: setmultiifnotnewer: %q: %w", key, errNotEntry))
			continue
		}
		keys = append(keys, key)
		redisKeys = append(redisKeys, b.prefix+key)
		values = append(values, value)
	}
	var refused []string
	if len(keys) > 0 {
		ms := b.storageTTL(ttl).Milliseconds()
		cmds, err := b.scriptAll(ctx, setIfNotNewerScript, redisKeys, func(i int) []any { return []any{values[i], ms} })
		for i, cmd := range cmds {
			if n, cerr := cmd.Int(); cerr == nil && n == 0 {
				refused = append(refused, keys[i])
			}
		}
		slices.Sort(refused)
		if err != nil {
			errs = append(errs, fmt.Errorf("redis: setmultiifnotnewer (%d keys): %w", len(items), err))
		}
	}
	return refused, errors.Join(errs...)
}
