package keys

import (
	"crypto/sha1"
	"encoding/hex"
	"unsafe"
)

// Mangler turns a generated key into the key a backend stores, for example to fit a backend's
// length limit or alphabet. A Mangler must be deterministic and safe for concurrent use.
type Mangler func(key string) string

// SHA1 returns the lowercase hex SHA-1 of key (40 bytes), like dogpile.cache's sha1_mangle_key.
// Its output is always a valid Memcached key. Cost: hashing key (read in place, never copied)
// and one allocation, the result. AppendSHA1 writes the same 40 bytes into a caller's buffer.
func SHA1(key string) string {
	var buf [2 * sha1.Size]byte
	return string(AppendSHA1(buf[:0], key))
}

// AppendSHA1 appends the lowercase hex SHA-1 of key (40 bytes, the same as SHA1(key)) to dst
// and returns the extended slice. It is for building mangled keys in buffers that are reused
// from call to call, where SHA1 would allocate a string each time. Cost: hashing key (read in
// place, never copied), and no allocation when dst has room for 40 more bytes
// (cap(dst)-len(dst) >= 40); otherwise one, to grow dst as append does. It keeps no reference
// to key or dst.
func AppendSHA1(dst []byte, key string) []byte {
	// sha1.Sum only reads its input, so a view of key's bytes stands in for a copy.
	sum := sha1.Sum(unsafe.Slice(unsafe.StringData(key), len(key)))
	return hex.AppendEncode(dst, sum[:])
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
