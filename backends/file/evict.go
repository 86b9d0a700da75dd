package file

import (
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// evictTarget is the fraction of each bound an eviction pass brings the directory down to, so
// that passes do not run on every write once the directory is full.
const evictTarget = 0.9

// scanStats are the figures of a scan of dataDir.
type scanStats struct {
	size    int64
	entries int64
}

// fileInfo is an entry file seen by a scan.
type fileInfo struct {
	sub, name string // its fan-out directory under dataDir, and its name there
	st        fileStat
}

// scan walks dataDir and returns the size and number of its entry files. When evict is set it
// also removes expired entries, temporary files older than staleTmpAge, and then the entries
// written longest ago (oldest mtime first) until the totals are under evictTarget of each bound.
// Files other than entries and temporary files are left alone and not counted. It reaches every
// file relative to a descriptor of its directory and follows no link: a link in the place of a
// fan-out directory, an entry or a temporary file is skipped.
func (b *Backend) scan(now time.Time, evict bool) (scanStats, error) {
	var st scanStats
	subs, err := readDirAt(b.dataFD, ".", b.dataDir)
	if err != nil {
		return st, err
	}
	var live []fileInfo
	for _, sub := range subs {
		if !sub.IsDir() || !isHexName(sub.Name(), 2) {
			continue
		}
		dfd, err := openDirAt(b.dataFD, sub.Name())
		if err != nil {
			continue // removed since the ReadDir, or replaced by a link
		}
		ents, err := readDirAt(dfd, ".", filepath.Join(b.dataDir, sub.Name()))
		if err != nil {
			closeFD(dfd)
			return st, err
		}
		for _, e := range ents {
			name := e.Name()
			if !e.Type().IsRegular() {
				continue
			}
			info, err := statAt(dfd, name)
			if err != nil || !info.regular() {
				continue // removed, or replaced, since the ReadDir
			}
			if len(name) > len(tmpPrefix) && name[:len(tmpPrefix)] == tmpPrefix {
				if evict && now.UnixNano()-info.mtime > int64(staleTmpAge) {
					removeIfSame(dfd, name, info)
				}
				continue
			}
			if !isHexName(name, 62) {
				continue
			}
			if evict && expired(dfd, name, now) {
				if removeIfSame(dfd, name, info) {
					continue
				}
			}
			st.size += info.size
			st.entries++
			if evict {
				live = append(live, fileInfo{sub: sub.Name(), name: name, st: info})
			}
		}
		closeFD(dfd)
	}
	if !evict || !b.over(st, 1) {
		return st, nil
	}
	slices.SortFunc(live, func(x, y fileInfo) int {
		switch {
		case x.st.mtime < y.st.mtime:
			return -1
		case x.st.mtime > y.st.mtime:
			return 1
		}
		return 0
	})
	for _, f := range live {
		if !b.over(st, evictTarget) {
			break
		}
		dfd, err := openDirAt(b.dataFD, f.sub)
		if err != nil {
			continue
		}
		if removeIfSame(dfd, f.name, f.st) {
			st.size -= f.st.size
			st.entries--
		}
		closeFD(dfd)
	}
	return st, nil
}

// readDirAt lists the directory name of dfd (whose path, for errors, is p), without following a
// link.
func readDirAt(dfd int, name, p string) ([]fs.DirEntry, error) {
	fd, err := openDirAt(dfd, name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return f.ReadDir(-1)
}

// over reports whether st is over fraction of a bound.
func (b *Backend) over(st scanStats, fraction float64) bool {
	return b.maxSize > 0 && float64(st.size) > fraction*float64(b.maxSize) ||
		b.maxEntries > 0 && float64(st.entries) > fraction*float64(b.maxEntries)
}

// expired reports whether the entry file name of the directory dfd holds an expiry that has
// passed at now. It reads the first 16 bytes only, and does not check the CRC (Get does). A file
// too short to hold them, or with another magic, is reported expired: it is no entry. A link or
// anything but a regular file is not read (nor opened, for a link) and is reported not expired:
// the scan leaves it alone.
func expired(dfd int, name string, now time.Time) bool {
	fd, err := openReadAt(dfd, name)
	if err != nil {
		return false
	}
	defer closeFD(fd)
	if st, err := statFD(fd); err != nil || !st.regular() {
		return false
	}
	var hdr [expOffset + 8]byte
	n := 0
	for n < len(hdr) {
		m, err := readFD(fd, hdr[n:])
		if err != nil {
			return false
		}
		if m == 0 {
			return true
		}
		n += m
	}
	if string(hdr[:4]) != magic {
		return true
	}
	exp := int64(binary.BigEndian.Uint64(hdr[expOffset:]))
	return exp != 0 && now.UnixNano() >= exp
}

// cleanupInterval is how often a writer runs a pass whatever the totals say: it removes expired
// entries nobody reads and temporary files of crashed writers, with or without a bound.
const cleanupInterval = 10 * time.Minute

// wrote counts n entries and size bytes just written by this process and runs a pass if one is
// due.
func (b *Backend) wrote(n, size int64) {
	if n == 0 {
		return
	}
	b.writes.Add(n)
	b.written.Add(size)
	b.maybeEvict()
}

// due reports whether a pass should run: the totals are over a bound; or this process alone wrote
// a tenth of a bound since the last pass, which the totals cannot tell when several processes
// write (each counts only its own writes), so that N writers overshoot a bound by about N tenths
// at most; or the last pass is older than cleanupInterval.
func (b *Backend) due() bool {
	return b.over(scanStats{size: b.size.Load(), entries: b.entries.Load()}, 1) ||
		b.maxEntries > 0 && b.writes.Load() > max(b.maxEntries/10, 1) ||
		b.maxSize > 0 && b.written.Load() > max(b.maxSize/10, 1) ||
		time.Now().UnixNano()-b.lastPass.Load() > int64(cleanupInterval)
}

// maybeEvict runs an eviction pass if one is due and none is running, in this process or (by the
// flock on evict.lock) in another. It runs in the calling writer's goroutine: that writer pays
// for the pass, other writers and every reader go on (the pass takes no lock they wait for).
// Errors of a pass are dropped: the next write tries again.
func (b *Backend) maybeEvict() {
	if !b.due() {
		return
	}
	if !b.evicting.CompareAndSwap(false, true) {
		return
	}
	defer b.evicting.Store(false)
	if b.closed.Load() {
		return
	}
	_ = b.pass()
}

// Evict runs an eviction pass now, waiting for one that runs in this process: it removes expired
// entries and stale temporary files and, if a bound is set and exceeded, the oldest entries until
// the directory is under 90% of each bound. Another process's pass in progress makes it return
// at once. It is what writes do when they cross a bound; call it to clean up a directory at a
// time of one's choosing (from a cron job, say).
func (b *Backend) Evict() error {
	for !b.evicting.CompareAndSwap(false, true) {
		if b.closed.Load() {
			return errClosed // Close holds the flag for good
		}
		time.Sleep(time.Millisecond)
	}
	defer b.evicting.Store(false)
	if b.closed.Load() {
		return errClosed
	}
	return b.pass()
}

// pass runs an eviction pass if no other process runs one; the caller holds b.evicting.
func (b *Backend) pass() error {
	taken, err := tryFlock(b.evictFile)
	if err != nil {
		return err
	}
	if !taken {
		return nil
	}
	defer func() { _ = unflock(b.evictFile) }()
	b.writes.Store(0)
	b.written.Store(0)
	b.lastPass.Store(time.Now().UnixNano())
	size0, entries0 := b.size.Load(), b.entries.Load()
	st, err := b.scan(time.Now(), true)
	if err != nil {
		return err
	}
	if b.bounded() {
		b.size.Add(st.size - size0)
		b.entries.Add(st.entries - entries0)
	}
	return nil
}
