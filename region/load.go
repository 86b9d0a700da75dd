package region

import (
	"context"
	"errors"
	"fmt"

	"github.com/dogpile-go/dogpile/backends"
)

// loaded is what a read found under a key.
type loaded[V any] struct {
	val     V
	created int64
	delta   int64 // how long the value's creation took; 0: unknown
	found   bool  // a usable entry: a value, or (neg) a cached "not found"
	neg     bool
	failed  bool // a byte backend's read failed, or the circuit breaker skipped it (FailOpen)
}

// negativeMark is what a ValueStore keeps for a cached "not found".
type negativeMark struct{}

// load reads k: found is false for a miss, a hard-invalidated entry, a malformed entry or one of
// another type (the last two reported). A backend error is a miss under FailOpen.
//
// On a byte backend the read is shared with the other callers of this process that read k at the
// same time (see reads): the herd on a hot key costs one round trip per read in flight. s is the
// call its errors name.
func (v *View[V]) load(ctx context.Context, b *bound, k string, s *scope) (loaded[V], error) {
	if b.values != nil {
		it, err := b.values.GetValue(ctx, k)
		return v.loadItem(ctx, it, err, s)
	}
	var rd *read
	err := errSkipped
	if t := v.r.allow(); t != skip {
		if rd, err = v.r.reads.read(ctx, b, k); rd != nil {
			err = rd.err
		}
		v.r.settle(ctx, t, err)
	}
	if err != nil {
		return loaded[V]{failed: !isNotFound(err)}, v.readFailed(ctx, s, err)
	}
	if rd.shared == 0 { // read for this caller alone
		return v.decodeEntry(ctx, k, rd.raw, s), nil
	}
	// Decoded once for every caller of this type that shared the read: they share the value.
	return rd.decodedAs(v.typ, func() any { return v.decodeEntry(ctx, k, rd.raw, s) }).(loaded[V]), nil
}

// loadNow is load with a read of its own, started now: for the reads that must see every write
// completed before them anywhere (the read under the distributed lock, before creating), which a
// shared read started earlier might not.
func (v *View[V]) loadNow(ctx context.Context, b *bound, k string, s *scope) (loaded[V], error) {
	if b.values != nil {
		it, err := b.values.GetValue(ctx, k)
		return v.loadItem(ctx, it, err, s)
	}
	var raw []byte
	err := errSkipped
	if t := v.r.allow(); t != skip {
		raw, err = b.backend.Get(ctx, k)
		v.r.settle(ctx, t, err)
	}
	if err != nil {
		return loaded[V]{}, v.readFailed(ctx, s, err)
	}
	return v.decodeEntry(ctx, k, raw, s), nil
}

// loadItem is load from a store that keeps Go values (the backend, or the local tier): it and
// err are what its read returned.
func (v *View[V]) loadItem(ctx context.Context, it backends.Item, err error, s *scope) (loaded[V], error) {
	if err != nil {
		return loaded[V]{}, v.readFailed(ctx, s, err)
	}
	if !v.r.usable(it.Created) {
		return loaded[V]{}, nil
	}
	tv, ok := it.Value.(V)
	if !ok || v.iface {
		if _, neg := it.Value.(negativeMark); neg {
			return loaded[V]{created: it.Created, delta: it.Delta, found: true, neg: true}, nil
		}
	}
	if !ok && it.Value == nil && v.iface {
		ok = true // a nil stored by a View of this interface type
	}
	if !ok {
		v.report(ctx, v.r.failAt(*s, KindMalformed, fmt.Errorf("%w: stored value is a %T, not a %v", backends.ErrMalformed, it.Value, v.typ)))
		return loaded[V]{}, nil
	}
	return loaded[V]{val: tv, created: it.Created, delta: it.Delta, found: true}, nil
}

// decodeEntry decodes the stored bytes raw of k: found is false for a hard-invalidated entry and
// for a malformed one or one whose payload does not decode into a V (both reported).
func (v *View[V]) decodeEntry(ctx context.Context, k string, raw []byte, s *scope) loaded[V] {
	e, err := v.r.open(k, raw)
	if err != nil {
		v.report(ctx, v.r.failAt(*s, KindMalformed, err))
		return loaded[V]{}
	}
	if !v.r.usable(e.Created) {
		return loaded[V]{}
	}
	if raw[2] >= 2 { // version 1 defined no flags
		if e.Flags&backends.FlagDeleted != 0 {
			return loaded[V]{} // a tombstone: deleted
		}
		if e.Flags&backends.FlagNegative != 0 {
			return loaded[V]{created: e.Created, delta: e.Delta, found: true, neg: true}
		}
	}
	val, err := v.decode(e.Payload)
	if err != nil {
		v.report(ctx, v.r.failAt(*s, KindMalformed, err))
		return loaded[V]{}
	}
	return loaded[V]{val: val, created: e.Created, delta: e.Delta, found: true}
}

// decode is apart from load so that the pointer handed to the codec moves only this function's
// value to the heap, not load's on the memory backend's hit path. A codec that panics on the
// bytes (they may be anyone's) fails the decode as malformed input does.
func (v *View[V]) decode(payload []byte) (_ V, err error) {
	var val V
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: decode %T: codec panicked: %v", backends.ErrMalformed, val, p)
		}
	}()
	if err := v.r.cfg.codec.Unmarshal(payload, &val); err != nil {
		var zero V
		return zero, fmt.Errorf("%w: decode %T: %w", backends.ErrMalformed, val, err)
	}
	return val, nil
}

func (v *View[V]) readFailed(ctx context.Context, s *scope, err error) error {
	if isNotFound(err) {
		return nil
	}
	return v.failed(ctx, v.r.backendFailed(*s, KindRead, err))
}

// isNotFound is errors.Is(err, backends.ErrNotFound), answered without errors.Is for the forms a
// backend returns on every miss: the sentinel, or the sentinel wrapped once with its name.
// errors.Is costs a miss more than the rest of its handling.
func isNotFound(err error) bool {
	if err == backends.ErrNotFound {
		return true
	}
	if w, ok := err.(interface{ Unwrap() error }); ok && w.Unwrap() == backends.ErrNotFound {
		return true
	}
	return errors.Is(err, backends.ErrNotFound)
}
