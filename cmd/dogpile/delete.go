package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
)

// deleted is one key delete or invalidate removed, as -json prints it.
type deleted struct {
	Key      string `json:"key"`
	StoredAs string `json:"stored_as"`
	// Existed says whether the key held a value just before the deletion; null when the read
	// failed (the deletion was still tried).
	Existed *bool `json:"existed"`
}

func (c *cli) delete(ctx context.Context, o *options, args []string) error {
	key, err := storedKey(o.mangle, args[1])
	if err != nil {
		return err
	}
	t, err := open(args[0])
	if err != nil {
		return err
	}
	defer t.close()
	if t.inProcess() {
		return t.nothingHere()
	}
	d := deleted{Key: args[1], StoredAs: key}
	_, err = t.backend.Get(ctx, key)
	switch {
	case err == nil:
		d.Existed = ptr(true)
	case errors.Is(err, backends.ErrNotFound):
		d.Existed = ptr(false)
	case ctx.Err() != nil:
		return err
	}
	if err := t.backend.Delete(ctx, key); err != nil {
		return err
	}
	if o.json {
		c.writeJSON(d)
		return nil
	}
	fmt.Fprintln(c.stdout, deletedText(d))
	return nil
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

// invalidated is what invalidate prints with -json.
type invalidated struct {
	Deleted []deleted `json:"deleted"`
	Match   string    `json:"match,omitempty"`
	DryRun  bool      `json:"dry_run,omitempty"`
	Count   int       `json:"count"`
	Existed int       `json:"existed"`
}

func (c *cli) invalidate(ctx context.Context, o *options, args []string) error {
	if o.match != "" {
		if len(args) != 1 {
			return usagef("-match takes the URL only, no keys")
		}
		if o.mangle != "" {
			return usagef("-match applies to stored keys: -mangle does not go with it")
		}
	} else {
		if len(args) < 2 {
			return usagef("no keys: give one or more keys, or -match on Redis")
		}
		if o.dryRun || o.limit != 0 {
			return usagef("-dry-run and -limit go with -match")
		}
	}
	stored := make([]string, len(args)-1)
	for i, k := range args[1:] {
		s, err := storedKey(o.mangle, k)
		if err != nil {
			return err
		}
		stored[i] = s
	}
	t, err := open(args[0])
	if err != nil {
		return err
	}
	defer t.close()
	if t.inProcess() {
		return t.nothingHere()
	}
	if o.match != "" {
		return c.invalidateMatch(ctx, o, t)
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
		res.Deleted[i] = deleted{Key: args[i+1], StoredAs: k}
		if readErr == nil {
			_, ok := present[k]
			res.Deleted[i].Existed = ptr(ok)
			if ok {
				res.Existed++
			}
		}
	}
	if md, ok := backends.As[backends.MultiDeleter](t.backend); ok {
		err = md.DeleteMulti(ctx, stored)
	} else {
		for _, k := range stored {
			if err = t.backend.Delete(ctx, k); err != nil {
				break
			}
		}
	}
	if err != nil {
		return err
	}
	res.Count = len(stored)
	if o.json {
		c.writeJSON(res)
		return nil
	}
	for _, d := range res.Deleted {
		fmt.Fprintln(c.stdout, deletedText(d))
	}
	if readErr == nil {
		fmt.Fprintf(c.stdout, "%d key(s) deleted, %d of them held an entry\n", res.Count, res.Existed)
	} else {
		fmt.Fprintf(c.stdout, "%d key(s) deleted\n", res.Count)
	}
	return nil
}

// matchBatch is how many keys one SCAN asks for and one DEL removes.
const matchBatch = 500

// invalidateMatch deletes (or, with -dry-run, lists) the Redis keys under the URL's prefix that
// match o.match. Lock keys (prefix + "\x00lock\x00" + key) are left alone: they expire by
// themselves, and deleting one would let a second creator in.
func (c *cli) invalidateMatch(ctx context.Context, o *options, t *target) error {
	rb, ok := backends.As[*redis.Backend](t.backend)
	if !ok {
		return usagef("-match works on Redis only: %s:// cannot list its keys", t.url.Scheme)
	}
	client := rb.Client()
	if clusterEnabled(ctx, client) {
		return errClusterNode
	}
	res := invalidated{Match: o.match, DryRun: o.dryRun, Deleted: []deleted{}}
	pattern := globEscape(t.prefix) + o.match
	var cursor uint64
	for {
		batch, next, err := client.Scan(ctx, cursor, pattern, matchBatch).Result()
		if err != nil {
			return fmt.Errorf("scan %q: %w", pattern, err)
		}
		var dels []string
		for _, k := range batch {
			if isLockKey(k) { // any region's lock, nested prefixes included
				continue
			}
			if o.limit > 0 && res.Count == o.limit {
				break
			}
			dels = append(dels, k)
			res.Count++
			res.Deleted = append(res.Deleted, deleted{Key: k[len(t.prefix):], StoredAs: k[len(t.prefix):], Existed: ptr(true)})
		}
		if len(dels) > 0 && !o.dryRun {
			// UNLINK, not DEL: the server frees large values in the background.
			if err := client.Unlink(ctx, dels...).Err(); err != nil {
				return fmt.Errorf("unlink %d keys: %w (%d deleted before)", len(dels), err, res.Count-len(dels))
			}
		}
		cursor = next
		if cursor == 0 || o.limit > 0 && res.Count == o.limit {
			break
		}
	}
	res.Existed = res.Count
	if o.json {
		c.writeJSON(res)
		return nil
	}
	verb := "deleted"
	if o.dryRun {
		verb = "would delete"
	}
	for _, d := range res.Deleted {
		fmt.Fprintf(c.stdout, "%s %q\n", verb, d.Key)
	}
	fmt.Fprintf(c.stdout, "%s %d key(s) matching %q under %s\n", verb, res.Count, o.match, t.shown())
	return nil
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
