package region

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/internal/dogpile"
)

// Error is the error of every call of a region that fails: of a View's and a Region's methods,
// and of memo handles through them. It is also what the error handler (WithErrorHandler) is
// given and what the region's log records describe. Route on it with errors.As, as on
// *fs.PathError; branch on its cause with errors.Is, which sees through it (ErrNotConfigured,
// ErrClosed, ErrCreationTimeout, ErrBackendUnavailable, backends.ErrMalformed, context errors,
// the creator's own error) and so does errors.As (*PanicError):
//
//	var e *region.Error
//	if errors.As(err, &e) && e.Kind == region.KindRead {
//		// the cache is down (under FailClosed)
//	}
//
// A *Error returned by a call that the region's call made (a creator that calls another region,
// View.Delete calling Region.Delete) is returned as it is, not wrapped again. A caller that waited
// for a creation another caller led gets a backend error of that creation as it was reported: Op
// and Key name the call that led it.
type Error struct {
	// Op is the operation that failed: the method the caller called.
	Op Op
	// Kind says what failed, for routing: the backend (read, write, lock), the stored bytes
	// (malformed, encode), the creator, the caller's context, the region's state or the call.
	Kind Kind
	// Key is the key as the caller gave it (before the region's key mangler). It is "" for an
	// error of a whole batch, of a call without a key (Invalidate, Configure, Close) and of the
	// region's background work (OpWatch).
	Key string
	// Region is the region's name.
	Region string
	// Err is the cause.
	Err error

	// reported marks a backend error that was reported already and ends a call under
	// FailClosed: it is returned as it is, not reported again, and never hidden by a stale
	// value. Set before the error is reported, never after.
	reported bool
}

// Error returns `region "name": op "key": kind: cause`, without the key when there is none.
func (e *Error) Error() string {
	s := "region " + strconv.Quote(e.Region) + ": " + string(e.Op)
	if e.Key != "" {
		s += " " + strconv.Quote(e.Key)
	}
	if e.Kind != "" {
		s += ": " + string(e.Kind)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Op names a region operation in an Error and in log records (attribute "op"): the method the
// caller called.
type Op string

// The operations. Each memo handle method is the View method it calls: Call is OpGetOrCreate
// (OpGetOrCreateMulti for a memo.Multi), Cached OpGet, Set OpSet, Refresh OpRefresh, Invalidate
// OpDelete, and their batch forms the batch operations.
const (
	OpGet              Op = "get"                 // View.Get
	OpGetMulti         Op = "get_multi"           // View.GetMulti
	OpGetOrCreate      Op = "get_or_create"       // View.GetOrCreate, GetOrCreateWith
	OpGetOrCreateMulti Op = "get_or_create_multi" // View.GetOrCreateMulti
	OpSet              Op = "set"                 // View.Set
	OpSetMulti         Op = "set_multi"           // View.SetMulti
	OpDelete           Op = "delete"              // Region.Delete, View.Delete
	OpDeleteMulti      Op = "delete_multi"        // Region.DeleteMulti, View.DeleteMulti
	OpRefresh          Op = "refresh"             // View.Refresh
	OpRefreshMulti     Op = "refresh_multi"       // View.RefreshMulti
	OpInvalidate       Op = "invalidate"          // Region.Invalidate
	OpConfigure        Op = "configure"           // Configure, ConfigureWith, ConfigureContext, ConfigureURL
	OpClose            Op = "close"               // Region.Close
	OpPublishExpvar    Op = "publish_expvar"      // Region.PublishExpvar
	// OpWatch is the region's own following of other processes' invalidations and writes
	// (WithSharedInvalidation, WithLocalCache): subscribing and polling in the background.
	// Its errors are reported, never returned.
	OpWatch Op = "watch"
)

// Kind says what failed in an Error, and is its attribute "kind" in log records. The first six
// are the kinds Stats.Errors counts: the errors a region reports. The others are only returned.
type Kind string

// The kinds.
const (
	// KindRead: a backend read failed (or was skipped by the circuit breaker, under FailClosed);
	// for OpWatch, also a subscription to other processes' announcements.
	KindRead Kind = "read"
	// KindWrite: a backend write or delete failed, a value too large included; also a failure to
	// announce a change to other processes.
	KindWrite Kind = "write"
	// KindLock: taking or releasing a backend's lock failed.
	KindLock Kind = "lock"
	// KindMalformed: a stored entry did not decode, did not verify, or held a value of another
	// type. The cause errors.Is backends.ErrMalformed.
	KindMalformed Kind = "malformed"
	// KindEncode: the codec could not encode a value.
	KindEncode Kind = "encode"
	// KindCreator: the creator failed: its own error (returned to every caller that waited for
	// it, and reported when nobody did: a background refresh, an early refresh, a value served
	// stale), a cached "not found" of it (WithNegativeCaching), a panic (*PanicError),
	// runtime.Goexit (ErrGoexit), a creation that ran too long (ErrCreationTimeout), or a batch
	// creator that left out a key a single-key call waited for (ErrNoValue).
	KindCreator Kind = "creator"
	// KindContext: the caller's context ended while the call waited (for a creation, or for
	// another caller's read); the cause is ctx.Err().
	KindContext Kind = "context"
	// KindClosed: the region is closed (ErrClosed), also for callers whose creation Close
	// cancelled; for OpClose, closing the backend or the local cache failed.
	KindClosed Kind = "closed"
	// KindUsage: the call cannot be made as asked: the region is not configured
	// (ErrNotConfigured) or already is (ErrAlreadyConfigured), a key is empty (ErrInvalidKey),
	// a creator is nil, an option, URL or Invalidation mode is invalid, an expvar name is taken.
	KindUsage Kind = "usage"
)

// fail returns err as an Error of this region: err itself when it is one already (from an inner
// call, or made deeper in this one), nil when err is nil. It allocates, on the error path only.
func (r *Region) fail(op Op, kind Kind, key string, err error) error {
	if err == nil {
		return nil
	}
	return r.errorOf(op, kind, key, err)
}

// errorOf is fail for an error that is not nil, typed.
func (r *Region) errorOf(op Op, kind Kind, key string, err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	// Copies: the hit path lends the callers' keys (see View.hit), which must not outlive the
	// call. op is copied too, because it comes in one scope with the key, and escape analysis
	// does not tell a struct's fields apart: were op kept, the key would be deemed kept as well.
	return &Error{Op: Op(strings.Clone(string(op))), Kind: kind, Key: strings.Clone(key), Region: r.name, Err: err}
}

// failAt is fail for the call s, whose key the error concerns.
func (r *Region) failAt(s scope, kind Kind, err error) error { return r.fail(s.op, kind, s.key, err) }

// backendFailed is the Error of a backend call of the call s that failed with err: of kind, or
// malformed when the backend says the stored bytes are (a file it cannot parse).
func (r *Region) backendFailed(s scope, kind Kind, err error) *Error {
	if errors.Is(err, backends.ErrMalformed) {
		kind = KindMalformed
	}
	return r.errorOf(s.op, kind, s.key, err)
}

// misuse is the Error of a call that cannot be made: KindClosed for ErrClosed, KindUsage for
// anything else (ErrNotConfigured, ErrInvalidKey, a nil creator).
func (r *Region) misuse(op Op, key string, err error) error {
	kind := KindUsage
	if errors.Is(err, ErrClosed) {
		kind = KindClosed
	}
	return r.fail(op, kind, key, err)
}

// outcome is the Error of a get-or-create call (op, the caller's key or "" for a batch) that
// the lock engine answered with err: what the creator did (its error, a panic, a timeout) or,
// when the caller's ctx has ended with that error, KindContext; an Error of the region (a
// backend error under FailClosed) is returned as it is.
func (r *Region) outcome(ctx context.Context, op Op, key string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dogpile.ErrClosed):
		return r.fail(op, KindClosed, key, ErrClosed)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return r.fail(op, KindContext, key, err)
	}
	return r.fail(op, KindCreator, key, err)
}

// batchError returns errs, the errors of the call s (nil ones skipped), as one error: nil, the
// only one, or an Error of the call's key ("" for a batch) whose cause joins them all (each an
// Error naming its key), of their kind when they share one and KindWrite otherwise.
func (r *Region) batchError(s scope, errs ...error) error {
	var kept []error
	for _, err := range errs {
		if err != nil {
			kept = append(kept, err)
		}
	}
	switch len(kept) {
	case 0:
		return nil
	case 1:
		return r.fail(s.op, KindWrite, s.key, kept[0])
	}
	kind := Kind("")
	for _, err := range kept {
		var e *Error
		k := KindWrite
		if errors.As(err, &e) {
			k = e.Kind
		}
		if kind != "" && k != kind {
			kind = KindWrite
			break
		}
		kind = k
	}
	return &Error{Op: s.op, Kind: kind, Key: s.key, Region: r.name, Err: errors.Join(kept...)}
}

// isReported reports whether err is a backend error reported already (see Error.reported).
func isReported(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.reported
}

// scope is what a region's errors say of the call they happen in: its operation and the key, as
// the caller gave it, that they concern ("" for a batch as a whole). The reads of the hit path
// (load, loadItem, ...) take it by pointer, which keeps their arguments in registers.
type scope struct {
	op  Op
	key string
}

// batchScope is scope for the keys of a batch: users[i] is the caller's form of the i-th key the
// callee is given.
type batchScope struct {
	op    Op
	users []string
}

// at is the scope of the i-th key.
func (s batchScope) at(i int) scope { return scope{s.op, s.users[i]} }

// span is the scope of keys [lo, hi) taken together: the key when there is one, the batch's ("")
// otherwise.
func (s batchScope) span(lo, hi int) scope {
	if hi-lo == 1 {
		return s.at(lo)
	}
	return scope{op: s.op}
}

// all is span over every key.
func (s batchScope) all() scope { return s.span(0, len(s.users)) }

// pick is the scope of the keys idx, in that order.
func (s batchScope) pick(idx []int) batchScope { return batchScope{s.op, pick(s.users, idx)} }

// errNilCreator is the cause of a call given a nil creator.
var errNilCreator = errors.New("nil creator")

// nilCreator is the error of a call of op on key given a nil creator.
func (v *View[V]) nilCreator(op Op, key string) error {
	return v.r.fail(op, KindUsage, key, errNilCreator)
}

// served is the cause reported for a failed regeneration whose caller was served a value
// anyway: what, and why.
func served(what string, err error) error { return fmt.Errorf("%s: %w", what, err) }

// cmpErr returns the first non-nil error.
func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
