package region

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"

	"github.com/dogpile-go/dogpile/backends"
)

// ErrSignature is wrapped (with backends.ErrMalformed) by the error of an entry that a region
// signing its entries (WithSignedEntries) refuses: unsigned, signed by an unknown key, stored
// under another key than the one it was signed for, or altered. Such an entry is a miss and a
// counted, reported error, never a value.
var ErrSignature = errors.New("entry signature does not verify")

// SigningKey is a secret key for signed entries (WithSignedEntries).
type SigningKey struct {
	// ID names the key in every entry it signs, so that readers know which key verifies it: 1 to
	// 255 bytes, not secret. Give each key of a rotation its own.
	ID string
	// Secret is the HMAC-SHA256 key: at least 32 random bytes, the same in every process of the
	// fleet.
	Secret []byte
}

// WithSignedEntries signs every entry the region stores in a byte backend with sign (an
// HMAC-SHA256 over the key it is stored under and the whole entry), and accepts on a read only
// an entry signed by sign or by one of verify and stored under the key it was signed for: an
// unsigned entry, one signed by another key, one copied from another key's name, or one changed
// by a byte, is a miss and a counted error that wraps ErrSignature, and its payload never
// reaches the codec. Use it when the server is shared with writers the fleet does not trust
// (other applications, other tenants): they can then delete or block entries, but not make the
// region return a value it did not store. Keys rotate in three steps: add the new key to verify
// everywhere, then make it the signing key everywhere (the old one in verify), then drop the old
// one once its entries have expired.
//
// It costs a hash of the entry on every write and every read from the backend (about 1µs for a
// few hundred bytes) and 34 bytes plus the key id in every entry. The memory backend keeps Go
// values, not bytes, and signs nothing. Every process of a fleet must use the same setting:
// entries written without signing are refused by a region that signs, and the other way round a
// region that does not sign reads signed entries without verifying them.
//
// IDs must be 1 to 255 bytes and distinct, and secrets at least 32 bytes: otherwise New and
// Configure return an error.
func WithSignedEntries(sign SigningKey, verify ...SigningKey) Option {
	return regionOption("WithSignedEntries", func(c *config) error {
		s, err := newSigner(sign, verify)
		if err != nil {
			return fmt.Errorf("WithSignedEntries: %w", err)
		}
		c.signer = s
		return nil
	})
}

// signer signs entries with one key and verifies them with any of its keys.
type signer struct {
	sign *signingKey
	keys map[string]*signingKey // by ID
}

type signingKey struct {
	id  string
	mac sync.Pool // of hash.Hash: hmac.New allocates, a hit must not
}

func newSigner(sign SigningKey, verify []SigningKey) (*signer, error) {
	s := &signer{keys: map[string]*signingKey{}}
	for i, k := range append([]SigningKey{sign}, verify...) {
		switch {
		case len(k.ID) == 0 || len(k.ID) > 255:
			return nil, fmt.Errorf("key %d: the id must be 1 to 255 bytes, not %d", i, len(k.ID))
		case len(k.Secret) < 32:
			return nil, fmt.Errorf("key %q: the secret must be at least 32 bytes, not %d", k.ID, len(k.Secret))
		case s.keys[k.ID] != nil:
			return nil, fmt.Errorf("key id %q given twice", k.ID)
		}
		secret := append([]byte(nil), k.Secret...)
		sk := &signingKey{id: k.ID}
		sk.mac.New = func() any { return hmac.New(sha256.New, secret) }
		s.keys[k.ID] = sk
		if i == 0 {
			s.sign = sk
		}
	}
	return s, nil
}

// signingDomain opens every signed message, so that the MAC of an entry is never the MAC of any
// other message made with the same secret.
const signingDomain = "dogpile-go entry signature v1\x00"

// sum appends to dst the MAC of msg stored under key.
func (k *signingKey) sum(dst []byte, key string, msg []byte) []byte {
	h := k.mac.Get().(hash.Hash)
	h.Reset()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(key)))
	h.Write([]byte(signingDomain))
	h.Write(n[:])
	h.Write([]byte(key))
	h.Write(msg)
	dst = h.Sum(dst)
	k.mac.Put(h)
	return dst
}

// seal encodes e as stored under k: signed when the region signs its entries.
func (r *Region) seal(k string, e backends.Entry) []byte {
	s := r.cfg.signer
	if s == nil {
		return backends.EncodeEntry(e)
	}
	e.Flags |= backends.FlagSigned
	id := s.sign.id
	raw := make([]byte, 0, backends.EntryHeaderSize+len(e.Payload)+len(id)+1+backends.SignatureSize)
	raw = backends.AppendEntry(raw, e)
	raw = append(raw, id...)
	raw = append(raw, byte(len(id)))
	return s.sign.sum(raw, k, raw)
}

// open decodes the entry raw stored under k. A region that signs its entries verifies it first;
// one that does not strips the signature of a signed entry without checking it.
func (r *Region) open(k string, raw []byte) (backends.Entry, error) {
	e, err := backends.DecodeEntry(raw)
	if err != nil {
		return e, err
	}
	signed := raw[2] >= 2 && e.Flags&backends.FlagSigned != 0 // version 1 defined no flags
	s := r.cfg.signer
	if !signed {
		if s != nil {
			return backends.Entry{}, fmt.Errorf("%w: %w: not signed", backends.ErrMalformed, ErrSignature)
		}
		return e, nil
	}
	data, id, sig, ok := backends.SplitSigned(e.Payload)
	if !ok {
		return backends.Entry{}, fmt.Errorf("%w: signed entry too short for its signature", backends.ErrMalformed)
	}
	if s != nil {
		key := s.keys[string(id)]
		if key == nil {
			return backends.Entry{}, fmt.Errorf("%w: %w: signed by unknown key %q", backends.ErrMalformed, ErrSignature, id)
		}
		var buf [sha256.Size]byte
		if !hmac.Equal(key.sum(buf[:0], k, raw[:len(raw)-len(sig)]), sig) {
			return backends.Entry{}, fmt.Errorf("%w: %w: key %q, stored under %q", backends.ErrMalformed, ErrSignature, id, k)
		}
	}
	e.Payload = data
	return e, nil
}

// parseSigningKeys reads the value of the signed_entries parameter: comma-separated
// "id:secret" pairs, secrets in standard or URL-safe base64; the first signs.
func parseSigningKeys(value string) (SigningKey, []SigningKey, error) {
	var keys []SigningKey
	for i, pair := range strings.Split(value, ",") {
		id, enc, ok := strings.Cut(pair, ":")
		if !ok || id == "" {
			return SigningKey{}, nil, fmt.Errorf("key %d: want id:base64-secret", i)
		}
		secret, err := decodeBase64(enc)
		if err != nil {
			return SigningKey{}, nil, fmt.Errorf("key %q: the secret is not base64", id)
		}
		keys = append(keys, SigningKey{ID: id, Secret: secret})
	}
	return keys[0], keys[1:], nil
}

func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}
