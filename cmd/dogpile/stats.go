package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/file"
	"github.com/dogpile-go/dogpile/backends/redis"
	goredis "github.com/redis/go-redis/v9"
)

// statsResult is what stats prints with -json; the section of the URL's backend is set.
type statsResult struct {
	Backend   string          `json:"backend"` // the URL without user information
	Region    *regionStats    `json:"region,omitempty"`
	Redis     *redisStats     `json:"redis,omitempty"`
	Memcached []memcacheStats `json:"memcached,omitempty"`
	File      *fileStats      `json:"file,omitempty"`
	Note      string          `json:"note,omitempty"`
}

// regionStats is what the backend holds of a region besides its entries: its shared
// invalidations.
type regionStats struct {
	Name string `json:"name"`
	// Hard and Soft are the times of the region's last shared invalidations (RFC 3339), empty
	// when none is stored.
	Hard string `json:"hard_invalidation,omitempty"`
	Soft string `json:"soft_invalidation,omitempty"`
	// Counters says where the region's hits and misses are: in each process, not here.
	Counters string `json:"counters"`
}

// countersNote is where a region's hits and misses can be read.
const countersNote = "hits, misses and creations are counted in each process (region.Stats): " +
	"read them where the application publishes them (Region.PublishExpvar at /debug/vars, or the prometheus module's collector)"

func (c *cli) stats(ctx context.Context, o *options, args []string) error {
	rawURL, args, err := splitSource(o, args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("stats takes no keys, got %d argument(s) after the backend", len(args))
	}
	t, err := c.openTarget(o, rawURL, readOnly)
	if err != nil {
		return err
	}
	defer t.close()
	c.warn("stats", t)
	res := statsResult{Backend: t.shown()}
	switch {
	case t.inProcess():
		res.Note = fmt.Sprintf("%s:// keeps entries in the memory of the process that uses it: a new process, such as this one, has nothing to inspect", t.url.Scheme)
	case t.url.Scheme == "memcached":
		res.Memcached, err = memcachedStats(ctx, t, o.timeout)
	default:
		if rb, ok := backends.As[*redis.Backend](t.backend); ok {
			res.Redis, err = scanRedis(ctx, rb.Client(), t.prefix, o.limit)
		} else if fb, ok := backends.As[*file.Backend](t.backend); ok {
			res.File, err = scanDir(fb.Dir(), c.now())
		} else {
			res.Note = fmt.Sprintf("the %s:// backend has no statistics this tool knows how to read", t.url.Scheme)
		}
	}
	if err != nil {
		return err
	}
	if t.region != nil && !t.inProcess() {
		if res.Region, err = storedInvalidations(ctx, t); err != nil {
			return err
		}
	}
	if o.json {
		c.writeJSON(res)
		return nil
	}
	w := c.stdout
	fmt.Fprintf(w, "backend: %s\n", res.Backend)
	if res.Note != "" {
		fmt.Fprintln(w, res.Note)
	}
	if res.Region != nil {
		res.Region.print(w, c.now())
	}
	if res.Redis != nil {
		res.Redis.print(w, t.prefix)
	}
	for _, m := range res.Memcached {
		m.print(w)
	}
	if res.File != nil {
		res.File.print(w)
	}
	return nil
}

// storedInvalidations reads the region's shared invalidation markers (what Region.Invalidate
// stores with region.WithSharedInvalidation, and invalidate -hard/-soft): under the region's
// mangled key "\x00dogpile\x00invalidated\x00<hard|soft>\x00<name>", an entry created at the
// invalidation's time. One read each.
func storedInvalidations(ctx context.Context, t *target) (*regionStats, error) {
	rs := &regionStats{Name: t.region.Name(), Counters: countersNote}
	for _, mode := range []string{"hard", "soft"} {
		k := t.storedKey("\x00dogpile\x00invalidated\x00" + mode + "\x00" + t.region.Name())
		raw, err := t.backend.Get(ctx, k)
		if errors.Is(err, backends.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read the region's %s invalidation: %w", mode, err)
		}
		created, ok := backends.EntryCreated(raw)
		if !ok {
			continue
		}
		at := time.Unix(0, created).UTC().Format(time.RFC3339Nano)
		if mode == "hard" {
			rs.Hard = at
		} else {
			rs.Soft = at
		}
	}
	return rs, nil
}

func (rs *regionStats) print(w io.Writer, now time.Time) {
	fmt.Fprintf(w, "region:     %s\n", rs.Name)
	for _, m := range []struct{ name, at string }{{"hard", rs.Hard}, {"soft", rs.Soft}} {
		if m.at == "" {
			fmt.Fprintf(w, "  %s invalidation: none stored\n", m.name)
			continue
		}
		at, _ := time.Parse(time.RFC3339Nano, m.at)
		fmt.Fprintf(w, "  %s invalidation: %s (%s ago)\n", m.name, m.at, roundDuration(now.Sub(at)))
	}
	fmt.Fprintf(w, "  counters: %s\n", rs.Counters)
}

// redisStats are a few figures of INFO and a count of the keys under the prefix.
type redisStats struct {
	Info map[string]string `json:"info"` // the INFO fields of redisInfoFields that the server gave

	// From SCAN under the prefix, up to Limit keys.
	Keys       int64 `json:"keys"`        // values (not locks)
	ValueBytes int64 `json:"value_bytes"` // their STRLEN, summed
	Locks      int64 `json:"locks"`       // held dogpile locks
	NoTTL      int64 `json:"no_ttl"`      // values without expiry
	Other      int64 `json:"other"`       // keys of another Redis type (not ours)
	Scanned    int64 `json:"scanned"`
	Limit      int   `json:"limit"`
	Complete   bool  `json:"complete"` // the scan went through every key under the prefix
}

// redisInfoFields are the INFO fields stats shows, in this order.
var redisInfoFields = []string{
	"redis_version", "uptime_in_days",
	"used_memory_human", "used_memory_peak_human", "maxmemory_human", "maxmemory_policy",
	"evicted_keys", "expired_keys", "keyspace_hits", "keyspace_misses",
}

func scanRedis(ctx context.Context, client goredis.UniversalClient, prefix string, limit int) (*redisStats, error) {
	st := &redisStats{Info: make(map[string]string), Limit: limit}
	for _, section := range []string{"server", "memory", "stats", "keyspace"} {
		info, err := client.Info(ctx, section).Result()
		if err != nil {
			return nil, fmt.Errorf("INFO %s: %w", section, err)
		}
		for _, line := range strings.Split(info, "\n") {
			name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok {
				continue
			}
			if slices.Contains(redisInfoFields, name) || section == "keyspace" && strings.HasPrefix(name, "db") {
				st.Info[name] = value
			}
		}
	}
	if st.Info["cluster_enabled"] == "1" || clusterEnabled(ctx, client) {
		return nil, errClusterNode
	}
	pattern := globEscape(prefix) + "*"
	var cursor uint64
	for {
		batch, next, err := client.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("SCAN: %w", err)
		}
		truncated := false
		if limit > 0 && st.Scanned+int64(len(batch)) > int64(limit) {
			batch, truncated = batch[:int64(limit)-st.Scanned], true
		}
		st.Scanned += int64(len(batch))
		var values []string
		for _, k := range batch {
			if isLockKey(k) {
				st.Locks++
			} else {
				values = append(values, k)
			}
		}
		lens := make([]*goredis.IntCmd, len(values))
		ttls := make([]*goredis.DurationCmd, len(values))
		_, err = client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, k := range values {
				lens[i] = p.StrLen(ctx, k)
				ttls[i] = p.PTTL(ctx, k)
			}
			return nil
		})
		if err != nil && ctx.Err() != nil {
			return nil, err
		}
		for i := range values {
			n, err := lens[i].Result()
			if err != nil { // WRONGTYPE: a list, a hash... not ours
				st.Other++
				continue
			}
			st.Keys++
			st.ValueBytes += n
			if d, err := ttls[i].Result(); err == nil && d == -1 {
				st.NoTTL++
			}
		}
		cursor = next
		if cursor == 0 && !truncated {
			st.Complete = true
			break
		}
		if limit > 0 && st.Scanned >= int64(limit) {
			break
		}
	}
	return st, nil
}

func (st *redisStats) print(w io.Writer, prefix string) {
	for _, name := range redisInfoFields {
		if v, ok := st.Info[name]; ok {
			fmt.Fprintf(w, "%-24s %s\n", name+":", v)
		}
	}
	var dbs []string
	for name := range st.Info {
		if strings.HasPrefix(name, "db") {
			dbs = append(dbs, name)
		}
	}
	slices.Sort(dbs)
	for _, name := range dbs {
		fmt.Fprintf(w, "%-24s %s\n", "keyspace "+name+":", st.Info[name])
	}
	under := fmt.Sprintf("under prefix %q", prefix)
	if prefix == "" {
		under = "in the database (no prefix in the URL)"
	}
	scope := "all of them"
	if !st.Complete {
		scope = fmt.Sprintf("stopped at -limit %d: at least", st.Limit)
	}
	fmt.Fprintf(w, "keys %s (%s):\n", under, scope)
	fmt.Fprintf(w, "  values:     %d, %d bytes (%d without a TTL)\n", st.Keys, st.ValueBytes, st.NoTTL)
	fmt.Fprintf(w, "  locks held: %d\n", st.Locks)
	if st.Other > 0 {
		fmt.Fprintf(w, "  other:      %d keys of another Redis type (not dogpile's)\n", st.Other)
	}
}

// memcacheStats are the answer of one memcached server to "stats".
type memcacheStats struct {
	Server string            `json:"server"`
	Stats  map[string]string `json:"stats,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// memcachedFields are the fields stats shows in text, in this order (-json has them all).
var memcachedFields = []string{
	"version", "uptime", "curr_items", "bytes", "limit_maxbytes", "get_hits", "get_misses",
	"evictions", "curr_connections",
}

// memcachedStats sends "stats" to every server of the URL. A server that does not answer is
// reported in its entry; all of them failing is an error.
func memcachedStats(ctx context.Context, t *target, timeout time.Duration) ([]memcacheStats, error) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var out []memcacheStats
	failed := 0
	for _, h := range strings.Split(t.url.Host, ",") {
		addr := h
		if _, _, err := net.SplitHostPort(h); err != nil {
			addr = net.JoinHostPort(strings.Trim(h, "[]"), "11211")
		}
		m := memcacheStats{Server: addr}
		stats, err := askStats(ctx, addr, timeout)
		if err != nil {
			failed++
			m.Error = err.Error()
		} else {
			m.Stats = stats
		}
		out = append(out, m)
	}
	if failed == len(out) {
		return nil, fmt.Errorf("memcached stats: %s", out[0].Error)
	}
	return out, nil
}

func askStats(ctx context.Context, addr string, timeout time.Duration) (map[string]string, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, "stats\r\n"); err != nil {
		return nil, err
	}
	stats := make(map[string]string)
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "END" {
			return stats, nil
		}
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 || f[0] != "STAT" {
			return nil, fmt.Errorf("%s: unexpected answer to stats: %q", addr, line)
		}
		stats[f[1]] = f[2]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	return nil, fmt.Errorf("%s: connection closed before END", addr)
}

func (m memcacheStats) print(w io.Writer) {
	fmt.Fprintf(w, "server %s:\n", m.Server)
	if m.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", m.Error)
		return
	}
	for _, name := range memcachedFields {
		if v, ok := m.Stats[name]; ok {
			fmt.Fprintf(w, "  %-18s %s\n", name+":", v)
		}
	}
	fmt.Fprintln(w, "  (memcached cannot list keys: no count under the prefix)")
}

// fileStats are the figures of a walk of a file backend's directory (the layout of package
// file's documentation).
type fileStats struct {
	Dir       string `json:"dir"`
	Entries   int64  `json:"entries"`
	Bytes     int64  `json:"bytes"`
	Expired   int64  `json:"expired"`    // past their storage TTL, not yet removed
	TempFiles int64  `json:"temp_files"` // writes in progress or leftovers of crashed writers
	Other     int64  `json:"other"`      // files that are not entries
}

// entryHeader is how much of an entry file scanDir reads: magic "dpf1", CRC, expiry.
const entryHeader = 16

func scanDir(dir string, now time.Time) (*fileStats, error) {
	st := &fileStats{Dir: dir}
	data := filepath.Join(dir, "data")
	err := filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed during the walk
			}
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		name := d.Name()
		if strings.HasPrefix(name, ".tmp-") {
			st.TempFiles++
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		var head [entryHeader]byte
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		n, _ := io.ReadFull(f, head[:])
		f.Close()
		if n < entryHeader || string(head[:4]) != "dpf1" {
			st.Other++
			return nil
		}
		st.Entries++
		st.Bytes += info.Size()
		if exp := int64(binary.BigEndian.Uint64(head[8:16])); exp != 0 && exp <= now.UnixNano() {
			st.Expired++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (st *fileStats) print(w io.Writer) {
	fmt.Fprintf(w, "directory:  %s\n", st.Dir)
	fmt.Fprintf(w, "entries:    %d, %d bytes (%d expired, removed by the next eviction pass)\n", st.Entries, st.Bytes, st.Expired)
	if st.TempFiles > 0 {
		fmt.Fprintf(w, "temp files: %d (writes in progress, or left by crashed writers)\n", st.TempFiles)
	}
	if st.Other > 0 {
		fmt.Fprintf(w, "other:      %d files that are not entries\n", st.Other)
	}
}

// isLockKey reports whether a Redis key is a dogpile lock: any region's, whatever its prefix (a
// region under "app:users:" scanned as "app:"), plain or in a Cluster's form. Data keys of
// regions never hold the lock mark.
func isLockKey(k string) bool { return strings.Contains(k, "\x00lock\x00") }

// errClusterNode refuses what a single node of a Cluster cannot answer for the whole Cluster: a
// scan reaches one node, also through a ClusterClient (redis+cluster://).
var errClusterNode = errors.New("the URL names a Redis Cluster, or one of its nodes, and a node holds only some of the keys: " +
	"scanning would count, or delete, one node's share only, so stats and invalidate -match refuse a Cluster")

// clusterEnabled asks the server whether it is a Cluster node.
func clusterEnabled(ctx context.Context, client goredis.UniversalClient) bool {
	info, err := client.Info(ctx, "cluster").Result()
	return err == nil && strings.Contains(info, "cluster_enabled:1")
}
