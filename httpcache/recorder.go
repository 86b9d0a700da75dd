package httpcache

import (
	"bytes"
	"net/http"
	"sync"
	"time"
)

// recorder is the ResponseWriter a creation runs the handler with. While the response may be
// stored it buffers it, up to the size bound; once it is known that it cannot be (its status or
// headers say so, or its body outgrows the bound) it writes what it holds to the client of the
// request that leads the creation and streams the rest through, unbuffered. The leader detaches
// it when it stops waiting for the creation: later writes (a creation that outlived its leader,
// a background regeneration) are dropped instead.
type recorder struct {
	c   *config
	now time.Time

	header http.Header // the handler's; used on the creation's goroutine only

	mu          sync.Mutex // guards the fields below: the creation writes, the leader detaches
	w           http.ResponseWriter
	ran         bool // the creation started: this request leads it
	wroteHeader bool
	status      int
	body        bytes.Buffer
	ttl         time.Duration
	why         reason // why the response cannot be stored; "" while it may be
	through     bool   // writing through to w (or to nothing, once detached)
	wroteClient bool   // wrote something to w
}

func newRecorder(c *config, w http.ResponseWriter) *recorder {
	return &recorder{c: c, w: w, header: make(http.Header)}
}

func (rec *recorder) Header() http.Header { return rec.header }

func (rec *recorder) WriteHeader(code int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.writeHeaderLocked(code)
}

func (rec *recorder) writeHeaderLocked(code int) {
	if rec.wroteHeader || code < 200 { // informational responses are not relayed
		return
	}
	rec.wroteHeader = true
	rec.status = code
	if code >= 500 {
		rec.why = reasonStatus // carried to this creation's callers, never stored
		return
	}
	rec.ttl, rec.why = rec.c.judge(code, rec.header, rec.now)
	if rec.why != "" {
		rec.goThroughLocked()
	}
}

func (rec *recorder) Write(p []byte) (int, error) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !rec.wroteHeader {
		rec.writeHeaderLocked(http.StatusOK)
	}
	if rec.through {
		return rec.writeClientLocked(p)
	}
	if int64(rec.body.Len()+len(p)) > rec.c.maxBody {
		rec.why = reasonTooLarge
		rec.goThroughLocked()
		return rec.writeClientLocked(p)
	}
	return rec.body.Write(p)
}

// goThroughLocked sends the header and what is buffered to the client and switches to
// streaming.
func (rec *recorder) goThroughLocked() {
	rec.through = true
	if rec.w != nil {
		h := rec.w.Header()
		for k, vs := range rec.header {
			h[k] = vs
		}
		if rec.c.cacheHeader != "" {
			h.Set(rec.c.cacheHeader, "PASS")
		}
		rec.w.WriteHeader(rec.status)
		rec.wroteClient = true
	}
	if rec.body.Len() > 0 {
		_, _ = rec.writeClientLocked(rec.body.Bytes())
	}
	rec.body = bytes.Buffer{}
}

func (rec *recorder) writeClientLocked(p []byte) (int, error) {
	if rec.w == nil {
		return len(p), nil
	}
	rec.wroteClient = true
	return rec.w.Write(p)
}

// Flush flushes the client's connection while streaming through; a buffered response is sent
// whole, later.
func (rec *recorder) Flush() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.through && rec.w != nil {
		_ = http.NewResponseController(rec.w).Flush()
	}
}

// detach stops writes to the leader's client and reports whether any reached it.
func (rec *recorder) detach() (wroteClient bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.w = nil
	return rec.wroteClient
}

// start marks the creation as started, on this request's recorder.
func (rec *recorder) start(now time.Time) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.ran = true
	rec.now = now
}

func (rec *recorder) led() bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.ran
}

// finish completes the response after the handler returned and says what became of it.
func (rec *recorder) finish() (status int, ttl time.Duration, why reason, body []byte) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !rec.wroteHeader {
		rec.writeHeaderLocked(http.StatusOK)
	}
	return rec.status, rec.ttl, rec.why, rec.body.Bytes()
}
