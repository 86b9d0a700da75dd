package keys

import (
	"crypto/sha1"
	"encoding/hex"
)

// Mangler turns a generated key into the key a backend stores, for example to fit a backend's
// length limit or alphabet. A Mangler must be deterministic and safe for concurrent use.
type Mangler func(key string) string

// SHA1 returns the lowercase hex SHA-1 of key (40 bytes), like dogpile.cache's sha1_mangle_key.
// Its output is always a valid Memcached key. Cost: hashing key, and one allocation (the
// result) for keys up to 256 bytes, two for longer ones.
func SHA1(key string) string {
	var buf [256]byte // keys up to this size are hashed without allocating a copy
	sum := sha1.Sum(append(buf[:0], key...))
	var out [2 * sha1.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

// Prefix returns a Mangler that prepends p to every key. The Mangler costs one allocation a call.
func Prefix(p string) Mangler {
	return func(key string) string { return p + key }
}

// LengthConditional returns a Mangler that applies m to keys longer than max bytes and returns
// shorter keys (len(key) <= max) unchanged, so short keys stay readable in the backend. It costs
// a length comparison plus m's cost for long keys. It panics if m is nil.
//
// The result is not injective when m's outputs can also be short keys: with SHA1 and max >= 40,
// a short key that is the hex digest of a long one collides with it. Default keys always contain
// Sep, which hex digits do not, so this cannot happen for them.
func LengthConditional(max int, m Mangler) Mangler {
	if m == nil {
		panic("keys: LengthConditional with nil Mangler")
	}
	return func(key string) string {
		if len(key) > max {
			return m(key)
		}
		return key
	}
}

// Chain returns a Mangler that applies ms in order, the output of one being the input of the
// next. Nil entries are skipped; Chain() and Chain(nil) return the identity. Chain copies ms, so
// later changes to the slice do not affect the result. It costs the sum of its Manglers' costs.
func Chain(ms ...Mangler) Mangler {
	var chain []Mangler
	for _, m := range ms {
		if m != nil {
			chain = append(chain, m)
		}
	}
	switch len(chain) {
	case 0:
		return func(key string) string { return key }
	case 1:
		return chain[0]
	}
	return func(key string) string {
		for _, m := range chain {
			key = m(key)
		}
		return key
	}
}
