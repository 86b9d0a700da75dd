package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

// deleted is one key delete or invalidate removed, as -json prints it.
type deleted struct {
	Key      string `json:"key"`
	StoredAs string `json:"stored_as"`
	// Existed says whether the key held a value just before the deletion (a tombstone counts as
	// absent); null when the read failed (the deletion was still tried).
	Existed *bool `json:"existed"`
	// KeyBase64 holds the key's bytes when they are not UTF-8 (-match), which Key cannot carry
	// through JSON.
	KeyBase64 []byte `json:"key_base64,omitempty"`
	// Announced (delete) says whether the region's processes were told to drop the key from
	// their local caches.
	Announced *bool `json:"announced,omitempty"`
}

func (c *cli) delete(ctx context.Context, o *options, args []string) error {
	rawURL, args, err := splitSource(o, args)
	if err != nil {
		return err
	}
	name, _, err := callKey(o, args)
	if err != nil {
		return err
	}
	t, err := c.openTarget(o, rawURL, announce)
	if err != nil {
		return err
	}
	defer t.close()
	c.warn("delete", t)
	if t.inProcess() {
		return t.nothingHere()
	}
	key := t.storedKey(name)
	d := deleted{Key: name, StoredAs: key}
	raw, err := t.backend.Get(ctx, key)
	switch {
	case err == nil:
		d.Existed = ptr(holdsEntry(raw))
	case errors.Is(err, backends.ErrNotFound):
		d.Existed = ptr(false)
	case ctx.Err() != nil:
		return err
	}
	if t.region != nil {
		err = t.region.Delete(ctx, name)
	} else {
		err = t.backend.Delete(ctx, key)
	}
	if err != nil {
		return err
	}
	note, announceErr := c.announcement(t)
	d.Announced = ptr(announceErr == nil && note == "")
	if o.json {
		c.writeJSON(d)
	} else {
		fmt.Fprintln(c.stdout, deletedText(d))
		c.printAnnouncement(t, note, announceErr, "it")
	}
	return announceErr
}

// holdsEntry reports whether raw, the bytes under a key, is an entry that reads as present: not
// a tombstone (what Region.Delete leaves on a backend that stores conditionally).
func holdsEntry(raw []byte) bool {
	e, err := backends.DecodeEntry(raw)
	return err != nil || e.Flags&backends.FlagDeleted == 0
}

// announcement says what became of the announcement of a deletion just made: note says why
// none was sent (no region, a backend that cannot broadcast), empty when it was; err is the
// failure of one that was tried.
func (c *cli) announcement(t *target) (note string, err error) {
	switch {
	case t.region == nil:
		return "not announced (no -region): processes with a local cache serve the old value until it ages out of it", nil
	case !t.notifies():
		return fmt.Sprintf("not announced: %s:// cannot broadcast, so processes with a local cache serve the old value until it ages out of it", t.url.Scheme), nil
	}
	if reports := t.takeReports(); len(reports) > 0 {
		return "", fmt.Errorf("deleted, but not announced to the processes of region %q (their local caches serve the old value until it ages out): %w",
			t.region.Name(), errors.Join(reports...))
	}
	return "", nil
}

// printAnnouncement writes what announcement found, as text.
func (c *cli) printAnnouncement(t *target, note string, err error, what string) {
	switch {
	case err != nil:
	case note != "":
		fmt.Fprintln(c.stdout, note)
	default:
		fmt.Fprintf(c.stdout, "announced to the processes of region %q: those with a local cache drop %s at once\n", t.region.Name(), what)
	}
}

func deletedText(d deleted) string {
	k := describeKey(d.Key, d.StoredAs)
	switch {
	case d.Existed == nil:
		return "deleted " + k + " (whether it existed is unknown: the read before failed)"
	case *d.Existed:
		return "deleted " + k + " (it existed)"
	}
	return "deleted " + k + " (it was absent)"
}

func ptr[T any](v T) *T { return &v }

// invalidated is what invalidate prints with -json for keys and -match.
type invalidated struct {
	Deleted []deleted `json:"deleted"`
	Match   string    `json:"match,omitempty"`
	DryRun  bool      `json:"dry_run,omitempty"`
	Count   int       `json:"count"`
	Existed int       `json:"existed"`
	Skipped *skipped  `json:"skipped,omitempty"` // with -match
	// Announced says whether the region's processes were told to drop the keys.
	Announced bool `json:"announced"`
}

// skipped counts the keys -match found and left alone.
type skipped struct {
	NotOurs int `json:"not_ours"` // another Redis type, or a string that is not an entry
	Locks   int `json:"locks"`    // held dogpile locks
	Changed int `json:"changed"`  // no longer the entry the check read when the delete came
}

func (c *cli) invalidate(ctx context.Context, o *options, args []string) error {
	if o.hard && o.soft {
		return usagef("-hard or -soft: one mode")
	}
	whole := o.hard || o.soft
	if whole && o.match != "" {
		return usagef("-hard and -soft invalidate the whole region: -match does not go with them")
	}
	if !whole && o.match == "" && (o.dryRun || o.limit != 0 || o.allPrefixes) {
		return usagef("-dry-run, -limit and -all-prefixes go with -match")
	}
	if o.match != "" && o.mangle != "" {
		return usagef("-match applies to stored keys: -mangle does not go with it")
	}
	rawURL, args, err := splitSource(o, args)
	if err != nil {
		return err
	}
	var names []string
	switch {
	case whole:
		if len(args) > 0 {
			return usagef("-hard and -soft invalidate the whole region: no keys")
		}
		if o.region == "" {
			return usagef("-hard and -soft invalidate a region: name it with -region (and -config)")
		}
	case o.match != "":
		if len(args) > 0 {
			return usagef("-match takes no keys")
		}
	case len(args) == 0:
		return usagef("nothing to invalidate: give keys, -hard or -soft (with -region), or -match on Redis")
	default:
		if names, err = callKeys(o, args); err != nil {
			return err
		}
	}
	use := announce
	if whole {
		use = shareMark
	}
	t, err := c.openTarget(o, rawURL, use)
	if err != nil {
		return err
	}
	defer t.close()
	c.warn("invalidate", t)
	if t.inProcess() {
		return t.nothingHere()
	}
	switch {
	case whole:
		return c.invalidateRegion(ctx, o, t)
	case o.match != "":
		return c.invalidateMatch(ctx, o, t)
	}
	stored := make([]string, len(names))
	for i, k := range names {
		stored[i] = t.storedKey(k)
	}
	res := invalidated{Deleted: make([]deleted, len(stored))}
	// What existed, in one round trip where the backend can.
	var present map[string][]byte
	var readErr error
	if mg, ok := backends.As[backends.MultiGetter](t.backend); ok {
		present, readErr = mg.GetMulti(ctx, stored)
	} else {
		present = make(map[string][]byte)
		for _, k := range stored {
			v, err := t.backend.Get(ctx, k)
			if err == nil {
				present[k] = v
			} else if !errors.Is(err, backends.ErrNotFound) {
				readErr = err
				break
			}
		}
	}
	if readErr != nil && ctx.Err() != nil {
		return readErr
	}
	for i, k := range stored {
		res.Deleted[i] = deleted{Key: names[i], StoredAs: k}
		if readErr == nil {
			raw, ok := present[k]
			ok = ok && holdsEntry(raw)
			res.Deleted[i].Existed = ptr(ok)
			if ok {
				res.Existed++
			}
		}
	}
	switch {
	case t.region != nil:
		err = t.region.DeleteMulti(ctx, names)
	default:
		if md, ok := backends.As[backends.MultiDeleter](t.backend); ok {
			err = md.DeleteMulti(ctx, stored)
		} else {
			for _, k := range stored {
				if err = t.backend.Delete(ctx, k); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		return err
	}
	res.Count = len(stored)
	note, announceErr := c.announcement(t)
	res.Announced = announceErr == nil && note == ""
	if o.json {
		c.writeJSON(res)
		return announceErr
	}
	for _, d := range res.Deleted {
		fmt.Fprintln(c.stdout, deletedText(d))
	}
	if readErr == nil {
		fmt.Fprintf(c.stdout, "%d key(s) deleted, %d of them held an entry\n", res.Count, res.Existed)
	} else {
		fmt.Fprintf(c.stdout, "%d key(s) deleted\n", res.Count)
	}
	c.printAnnouncement(t, note, announceErr, "them")
	return announceErr
}

// regionInvalidated is what invalidate -hard or -soft prints with -json.
type regionInvalidated struct {
	Region    string `json:"region"`
	Mode      string `json:"mode"` // hard or soft
	At        string `json:"at"`   // about when (RFC 3339, this host's clock)
	Stored    bool   `json:"stored"`
	Announced bool   `json:"announced"`
	// Shared says whether the region's settings give it shared invalidation: without it, only the
	// processes with a local cache, which follow the announcements, are reached.
	Shared bool `json:"shared"`
}

// invalidateRegion invalidates the whole region as Region.Invalidate does with shared
// invalidation: the marker is stored in the backend (one write) and announced (one PUBLISH
// where the backend can).
func (c *cli) invalidateRegion(ctx context.Context, o *options, t *target) error {
	mode, modeName := region.Hard, "hard"
	if o.soft {
		mode, modeName = region.Soft, "soft"
	}
	at := time.Now().UTC()
	if err := t.region.Invalidate(ctx, mode); err != nil {
		return err
	}
	res := regionInvalidated{Region: t.region.Name(), Mode: modeName, At: at.Format(time.RFC3339Nano), Stored: true, Shared: t.shared}
	var announceErr error
	if t.notifies() {
		if reports := t.takeReports(); len(reports) > 0 {
			announceErr = fmt.Errorf("invalidation stored, but not announced (processes that share invalidations read it at their next poll; the others are not reached): %w",
				errors.Join(reports...))
		} else {
			res.Announced = true
		}
	}
	if !t.shared {
		fmt.Fprintf(c.stderr, "dogpile invalidate: warning: the region's settings give no shared_invalidation: its processes never read the stored marker, "+
			"and only those with a local cache (which follow the announcements) apply it\n")
	}
	if o.json {
		c.writeJSON(res)
		return announceErr
	}
	effect := "absent"
	if mode == region.Soft {
		effect = "expired"
	}
	fmt.Fprintf(c.stdout, "invalidated region %q (%s): entries created before %s are %s\n", res.Region, modeName, res.At, effect)
	switch {
	case announceErr != nil:
	case res.Announced:
		fmt.Fprintf(c.stdout, "stored in %s and announced: the processes that follow the region apply it now\n", t.shown())
	default:
		fmt.Fprintf(c.stdout, "stored in %s; %s:// cannot broadcast: processes apply it at their next shared-invalidation poll\n", t.shown(), t.url.Scheme)
	}
	return announceErr
}

// matchBatch is the COUNT of each SCAN: about how many keys one check (a pipeline) and one
// delete (a script) handle.
const matchBatch = 500

// checkLen is how much of each value the check reads (GETRANGE 0 checkLen-1): an entry's
// header (backends.EntryHeaderSize bytes) and a whole lock token (lockTokenLen).
const checkLen = 64

// lockTokenLen is the length of the value of a held lock: 16 random bytes in hex (package
// redis's TryLock).
const lockTokenLen = 32

// unlinkScript deletes KEYS[i] if it still is a string that starts with the bytes ARGV[i], the
// header the check read, and answers, for each key, 1 if it deleted it and 0 if not. Checking
// again inside the script, which runs atomically, keeps a key that changed since the check (set
// by another program, made a list) from being deleted: a new entry of ours has another header
// and is left too, counted as changed.
var unlinkScript = goredis.NewScript(`
local out = {}
for i, k in ipairs(KEYS) do
  out[i] = 0
  if redis.call('TYPE', k).ok == 'string' and redis.call('GETRANGE', k, 0, #ARGV[i] - 1) == ARGV[i] then
    redis.call('UNLINK', k)
    out[i] = 1
  end
end
return out
`)

// keyKind is what a key found by -match holds.
type keyKind int

const (
	notOurs  keyKind = iota // another Redis type, or a string that is not an entry of ours
	entryKey                // an entry (backends.EntryCreated reads its header)
	lockKey                 // a held dogpile lock: its name has the lock mark, its value is a token
)

// classify says what key holds from its Redis type and the first checkLen bytes of its value.
// The envelope is read by package backends, as regions read it, so that the tool and the
// library agree on what an entry is.
func classify(key, typ string, head []byte) keyKind {
	if typ != "string" {
		return notOurs
	}
	if isLockKey(key) {
		if len(head) == lockTokenLen && isHex(head) {
			return lockKey
		}
		return notOurs
	}
	if _, ok := backends.EntryCreated(head); ok {
		return entryKey
	}
	return notOurs
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// literalPrefix returns the part of a Redis glob before its first wildcard ('*', '?', '['),
// with escapes ('\x') read as the character they escape.
func literalPrefix(glob string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*', '?', '[':
			return b.String()
		case '\\':
			if i+1 < len(glob) {
				i++
			}
		}
		b.WriteByte(glob[i])
	}
	return b.String()
}

// invalidateMatch deletes (or, with -dry-run, lists) the entries among the Redis keys under the
// URL's prefix that match o.match. Only entries of this library are deleted: keys of another
// type, strings that do not start with the entry envelope, and locks (prefix + "\x00lock\x00" +
// key, holding a token; deleting a held one would let a second creator in) are skipped and
// counted. Each batch costs three round trips: SCAN (COUNT matchBatch), a pipeline of TYPE and
// GETRANGE per key, and one script that deletes the entries, checking each again atomically.
func (c *cli) invalidateMatch(ctx context.Context, o *options, t *target) error {
	rb, ok := backends.As[*redis.Backend](t.backend)
	if !ok {
		return usagef("-match works on Redis only: %s:// cannot list its keys", t.url.Scheme)
	}
	if t.prefix == "" && literalPrefix(o.match) == "" && !o.allPrefixes {
		return usagef("refusing -match %q: the backend has no prefix= and the pattern starts with a wildcard, "+
			"so it would reach every key of the database, other applications' included. "+
			"Add the regions' prefix to the URL (?prefix=app:) or start the pattern with it (-match 'app:*'); "+
			"or, to scan the whole database, add -all-prefixes (only dogpile entries are deleted either way; -dry-run lists them)", o.match)
	}
	client := rb.Client()
	if clusterEnabled(ctx, client) {
		return errClusterNode
	}
	res := invalidated{Match: o.match, DryRun: o.dryRun, Deleted: []deleted{}, Skipped: &skipped{}}
	err := c.scanMatch(ctx, o, t, client, &res)
	res.Existed = res.Count
	var note string
	var announceErr error
	if !o.dryRun {
		// The keys deleted before an error too: their processes must drop them all the same.
		gone := make([]string, len(res.Deleted))
		for i, d := range res.Deleted {
			gone[i] = d.StoredAs
		}
		if note, announceErr = c.announcement(t); announceErr == nil && note == "" {
			announceErr = announceKeys(ctx, t, gone)
		}
		res.Announced = announceErr == nil && note == ""
	}
	if err != nil {
		if announceErr != nil {
			err = errors.Join(err, announceErr)
		}
		return fmt.Errorf("%w (%d entries deleted before)", err, res.Count)
	}
	if o.json {
		c.writeJSON(res)
		return announceErr
	}
	verb := "deleted"
	if o.dryRun {
		verb = "would delete"
	}
	for _, d := range res.Deleted {
		fmt.Fprintf(c.stdout, "%s %q\n", verb, d.Key)
	}
	fmt.Fprintf(c.stdout, "%s %d key(s) matching %q under %s; skipped %d not dogpile entries, %d lock(s)",
		verb, res.Count, o.match, t.shown(), res.Skipped.NotOurs, res.Skipped.Locks)
	if res.Skipped.Changed > 0 {
		fmt.Fprintf(c.stdout, ", %d changed between the check and the delete", res.Skipped.Changed)
	}
	fmt.Fprintln(c.stdout)
	if !o.dryRun && res.Count > 0 {
		c.printAnnouncement(t, note, announceErr, "them")
	}
	return announceErr
}

// scanMatch runs the batches of invalidateMatch, adding to res as it goes.
func (c *cli) scanMatch(ctx context.Context, o *options, t *target, client goredis.UniversalClient, res *invalidated) error {
	pattern := globEscape(t.prefix) + o.match
	var cursor uint64
	for {
		batch, next, err := client.Scan(ctx, cursor, pattern, matchBatch).Result()
		if err != nil {
			return fmt.Errorf("scan %q: %w", pattern, err)
		}
		types := make([]*goredis.StatusCmd, len(batch))
		heads := make([]*goredis.StringCmd, len(batch))
		if len(batch) > 0 {
			// A GETRANGE on a list or a hash fails (WRONGTYPE), and so Pipelined: the TYPE of
			// each key tells which failures are those.
			_, _ = client.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for i, k := range batch {
					types[i] = p.Type(ctx, k)
					heads[i] = p.GetRange(ctx, k, 0, checkLen-1)
				}
				return nil
			})
		}
		var keys []string
		var args []any
		for i, k := range batch {
			typ, err := types[i].Result()
			if err != nil {
				return fmt.Errorf("type %q: %w", k, err)
			}
			head, err := heads[i].Bytes()
			if typ == "string" && err != nil {
				return fmt.Errorf("getrange %q: %w", k, err)
			}
			switch classify(k, typ, head) {
			case notOurs:
				if typ != "none" { // "none": gone since the SCAN
					res.Skipped.NotOurs++
				}
				continue
			case lockKey:
				res.Skipped.Locks++
				continue
			}
			if o.limit > 0 && res.Count+len(keys) == o.limit {
				break
			}
			keys = append(keys, k)
			args = append(args, head[:min(len(head), backends.EntryHeaderSize)])
		}
		done := make([]bool, len(keys))
		if len(keys) > 0 && !o.dryRun {
			n, err := unlinkScript.Run(ctx, client, keys, args...).Int64Slice()
			if err != nil {
				return fmt.Errorf("delete %d entries: %w", len(keys), err)
			}
			for i := range keys {
				done[i] = i < len(n) && n[i] == 1
			}
		} else {
			for i := range done {
				done[i] = true
			}
		}
		for i, k := range keys {
			if !done[i] {
				res.Skipped.Changed++
				continue
			}
			res.Count++
			res.Deleted = append(res.Deleted, matched(k[len(t.prefix):]))
		}
		cursor = next
		if cursor == 0 || o.limit > 0 && res.Count == o.limit {
			return nil
		}
	}
}

// matched is the report of one key -match deleted, named after the URL's prefix.
func matched(key string) deleted {
	d := deleted{Key: key, StoredAs: key, Existed: ptr(true)}
	if !utf8.ValidString(key) {
		d.KeyBase64 = []byte(key) // JSON would replace its bytes that are not UTF-8
	}
	return d
}

// globEscape escapes the characters Redis's MATCH treats specially, so that a prefix matches
// itself only.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ { // bytes, not runes: a prefix need not be UTF-8
		switch c := s[i]; c {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
