package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
)

// previewLen is how many bytes of a payload that is not JSON the text output shows.
const previewLen = 256

// getResult is what get prints with -json.
type getResult struct {
	Key       string `json:"key"`
	StoredAs  string `json:"stored_as"`
	Found     bool   `json:"found"`
	Size      int    `json:"size,omitempty"`
	Malformed string `json:"malformed,omitempty"` // why the bytes are not an entry

	Version   int    `json:"version,omitempty"`
	Created   string `json:"created,omitempty"` // RFC 3339, nanoseconds, UTC
	CreatedNs int64  `json:"created_unix_ns,omitempty"`
	AgeNs     int64  `json:"age_ns,omitempty"`
	DeltaNs   int64  `json:"delta_ns,omitempty"` // how long the creation took; 0 unknown
	Flags     uint8  `json:"flags"`
	// SignedBy is the id of the key that signed the entry (region.WithSignedEntries), unverified.
	SignedBy    string `json:"signed_by,omitempty"`
	Negative    bool   `json:"negative"`
	PayloadSize int    `json:"payload_size"`
	StorageTTL  *int64 `json:"storage_ttl_ns,omitempty"` // Redis: PTTL; -1 for none

	Payload       json.RawMessage `json:"payload,omitempty"`        // when it is JSON
	PayloadString *string         `json:"payload_string,omitempty"` // when it is UTF-8 text but not JSON
	PayloadBase64 []byte          `json:"payload_base64,omitempty"` // otherwise (and the bytes of a malformed value)
}

func (c *cli) get(ctx context.Context, o *options, args []string) error {
	rawURL, args, err := splitSource(o, args)
	if err != nil {
		return err
	}
	name, how, err := callKey(o, args)
	if err != nil {
		return err
	}
	t, err := c.openTarget(o, rawURL, readOnly)
	if err != nil {
		return err
	}
	defer t.close()
	c.warn("get", t)
	if t.inProcess() {
		return t.nothingHere()
	}
	key := t.storedKey(name)
	raw, err := t.backend.Get(ctx, key)
	if errors.Is(err, backends.ErrNotFound) {
		if o.json {
			c.writeJSON(struct {
				Key      string `json:"key"`
				StoredAs string `json:"stored_as"`
				Found    bool   `json:"found"`
			}{name, key, false})
		}
		var hints []string
		if how != "" {
			hints = append(hints, how)
		}
		if o.mangle == "" {
			hints = append(hints, "does the region mangle its keys? then say how: -mangle sha1")
		}
		hint := ""
		if len(hints) > 0 {
			hint = " (" + strings.Join(hints, "; ") + ")"
		}
		return fmt.Errorf("key %s %w in %s%s", describeKey(name, key), errNotFound, t.shown(), hint)
	}
	if err != nil {
		return err
	}
	res, e, derr := describeEntry(raw, c.now())
	res.Key, res.StoredAs = name, key
	if derr != nil {
		if o.payload {
			_, err := c.stdout.Write(raw)
			if err != nil {
				return err
			}
		} else if o.json {
			res.PayloadBase64 = raw
			c.writeJSON(res)
		} else {
			c.printMalformed(res, raw)
		}
		return fmt.Errorf("key %s holds %d bytes that are not a dogpile entry (%v); a region reads it as a miss", describeKey(name, key), len(raw), derr)
	}
	if o.payload {
		_, err := c.stdout.Write(e.Payload)
		return err
	}
	if ttl, ok := storageTTL(ctx, t, key); ok {
		res.StorageTTL = &ttl
	}
	if o.json {
		c.writeJSON(res)
		return nil
	}
	c.printEntry(res, e)
	return nil
}

// describeEntry decodes raw, the bytes stored under a key, as get shows them at the time now:
// everything but the key and the storage TTL, and the entry, its payload without a signature
// trailer. When raw is not an entry, err says why (and so does res.Malformed). It reads nothing
// but raw: the bytes of whatever wrote to the backend, which get must show without trusting.
func describeEntry(raw []byte, now time.Time) (res getResult, e backends.Entry, err error) {
	res = getResult{Found: true, Size: len(raw)}
	e, err = backends.DecodeEntry(raw)
	if err != nil {
		res.Malformed = err.Error()
		return res, backends.Entry{}, err
	}
	if raw[2] >= 2 && e.Flags&backends.FlagSigned != 0 {
		// The codec's bytes end where the signature trailer begins; the signature is not checked
		// here (the tool holds no key): the region that reads it does.
		if data, id, _, ok := backends.SplitSigned(e.Payload); ok {
			e.Payload, res.SignedBy = data, string(id)
		}
	}
	created := time.Unix(0, e.Created).UTC()
	res.Version = int(raw[2]) // DecodeEntry checked the magic and the version
	res.Created = created.Format(time.RFC3339Nano)
	res.CreatedNs = e.Created
	res.AgeNs = now.UnixNano() - e.Created
	res.DeltaNs = e.Delta
	res.Flags = e.Flags
	res.Negative = e.Flags&backends.FlagNegative != 0
	res.PayloadSize = len(e.Payload)
	switch kind := payloadKind(e.Payload); kind {
	case "JSON":
		res.Payload = json.RawMessage(bytes.TrimSpace(e.Payload))
	case "text":
		s := string(e.Payload)
		res.PayloadString = &s
	case "binary":
		res.PayloadBase64 = e.Payload
	}
	return res, e, nil
}

// storageTTL asks Redis how long it keeps key (PTTL): -1 for no expiry. Other backends do not
// tell: ok is false.
func storageTTL(ctx context.Context, t *target, key string) (int64, bool) {
	rb, ok := backends.As[*redis.Backend](t.backend)
	if !ok {
		return 0, false
	}
	d, err := rb.Client().PTTL(ctx, t.prefix+key).Result()
	if err != nil || d == -2 { // -2: gone since the GET
		return 0, false
	}
	if d < 0 {
		return -1, true
	}
	return int64(d), true
}

// payloadKind says how to show a payload: "JSON", "text" (valid UTF-8 without control
// characters other than whitespace), "binary", or "empty".
func payloadKind(p []byte) string {
	switch {
	case len(p) == 0:
		return "empty"
	case json.Valid(p):
		return "JSON"
	case utf8.Valid(p) && printable(p):
		return "text"
	}
	return "binary"
}

func printable(p []byte) bool {
	for _, r := range string(p) {
		if r < ' ' && r != '\n' && r != '\t' && r != '\r' || r == 0x7f {
			return false
		}
	}
	return true
}

func describeKey(key, stored string) string {
	if key == stored {
		return strconv.Quote(key)
	}
	return fmt.Sprintf("%q (stored as %q)", key, stored)
}

func (c *cli) printEntry(res getResult, e backends.Entry) {
	w := c.stdout
	fmt.Fprintf(w, "key:         %s\n", res.Key)
	if res.StoredAs != res.Key {
		fmt.Fprintf(w, "stored as:   %s\n", res.StoredAs)
	}
	age := time.Duration(res.AgeNs)
	ageText := "age " + roundDuration(age).String()
	if age < 0 {
		ageText = roundDuration(-age).String() + " in the future: clocks disagree"
	}
	fmt.Fprintf(w, "created:     %s (%s)\n", res.Created, ageText)
	if res.DeltaNs > 0 {
		fmt.Fprintf(w, "creation:    took %s\n", roundDuration(time.Duration(res.DeltaNs)))
	} else {
		fmt.Fprintf(w, "creation:    time unknown\n")
	}
	fmt.Fprintf(w, "size:        %d bytes (%d-byte header, %d-byte payload)\n", res.Size, res.Size-res.PayloadSize, res.PayloadSize)
	fmt.Fprintf(w, "flags:       %s\n", flagsText(res.Flags))
	fmt.Fprintf(w, "format:      version %d\n", res.Version)
	if res.StorageTTL != nil {
		if *res.StorageTTL < 0 {
			fmt.Fprintf(w, "storage ttl: none (kept until deleted or evicted)\n")
		} else {
			fmt.Fprintf(w, "storage ttl: %s left\n", roundDuration(time.Duration(*res.StorageTTL)))
		}
	}
	switch kind := payloadKind(e.Payload); kind {
	case "empty":
		fmt.Fprintf(w, "payload:     empty\n")
	case "JSON":
		p := bytes.TrimSpace(e.Payload)
		if jsonDepth(p) > maxIndentDepth {
			fmt.Fprintf(w, "payload (JSON, nested more than %d deep: as stored):\n", maxIndentDepth)
			w.Write(p)
			io.WriteString(w, "\n")
			break
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, p, "", "  "); err != nil {
			buf.Reset()
			buf.Write(p)
		}
		buf.WriteByte('\n')
		io.WriteString(w, "payload (JSON):\n")
		w.Write(buf.Bytes())
	case "text":
		fmt.Fprintf(w, "payload (text, not JSON):\n%s\n", quotePreview(e.Payload))
	default:
		fmt.Fprintf(w, "payload (binary: gob or a raw codec? -payload writes its bytes):\n%s", hexPreview(e.Payload))
	}
}

// maxIndentDepth is the deepest JSON payload get indents. Indenting writes, on every line, two
// spaces per level of nesting: a payload nested d deep may grow d-fold (quadratically in its size
// when it is all nesting), so a deeper one is shown as stored. At this depth, indenting grows a
// payload at most about 17-fold ("0," becomes a line of up to 16 indents).
const maxIndentDepth = 16

// jsonDepth returns how deep the valid JSON p nests its arrays and objects. It does not allocate.
func jsonDepth(p []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, b := range p {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch b {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case b == '"':
			inString = true
		case b == '[' || b == '{':
			depth++
			deepest = max(deepest, depth)
		case b == ']' || b == '}':
			depth--
		}
	}
	return deepest
}

func (c *cli) printMalformed(res getResult, raw []byte) {
	w := c.stdout
	fmt.Fprintf(w, "key:         %s\n", res.Key)
	if res.StoredAs != res.Key {
		fmt.Fprintf(w, "stored as:   %s\n", res.StoredAs)
	}
	fmt.Fprintf(w, "size:        %d bytes\n", res.Size)
	fmt.Fprintf(w, "malformed:   %s\n", res.Malformed)
	if utf8.Valid(raw) && printable(raw) {
		fmt.Fprintf(w, "bytes (text):\n%s\n", quotePreview(raw))
	} else {
		fmt.Fprintf(w, "bytes:\n%s", hexPreview(raw))
	}
}

// flagsText names the flag bits of an entry.
func flagsText(f uint8) string {
	if f == 0 {
		return "none"
	}
	var s string
	for _, fl := range []struct {
		bit  uint8
		text string
	}{
		{backends.FlagNegative, "negative: cached not found"},
		{backends.FlagDeleted, "deleted: a tombstone, read as absent"},
		{backends.FlagSigned, "signed"},
	} {
		if f&fl.bit != 0 {
			if s != "" {
				s += ", "
			}
			s += fl.text
			f &^= fl.bit
		}
	}
	if f != 0 {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("unknown bits %#02x (a newer release?)", f)
	}
	return s
}

// quotePreview quotes the first previewLen bytes of p as a Go string.
func quotePreview(p []byte) string {
	if len(p) <= previewLen {
		return strconv.Quote(string(p))
	}
	return fmt.Sprintf("%s... (%d more bytes)", strconv.Quote(string(p[:previewLen])), len(p)-previewLen)
}

// hexPreview dumps the first previewLen bytes of p as hex -C does.
func hexPreview(p []byte) string {
	if len(p) <= previewLen {
		return hex.Dump(p)
	}
	return hex.Dump(p[:previewLen]) + fmt.Sprintf("... (%d more bytes)\n", len(p)-previewLen)
}

// roundDuration rounds d for reading: milliseconds under a minute, seconds above.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d
	case d < time.Minute:
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// writeJSON writes v as one line of JSON.
func (c *cli) writeJSON(v any) {
	enc := json.NewEncoder(c.stdout)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
