package backends

import (
	"errors"
	"net/url"
	"strings"
)

// redacted stands in for every secret Redact removes.
const redacted = "xxxxx"

// secretParams are the substrings of a query parameter's name (compared in lower case) that make
// Redact hide its value: password and sentinel_password (go-redis), passwd, pwd, tokens, secrets,
// credentials, auth, and the keys of signed entries (signed_entries).
var secretParams = []string{"pass", "pwd", "secret", "token", "credential", "auth", "signed"}

// Redact returns rawURL as messages and logs may show it: the user information, all of it (a
// token may stand alone in the user part: redis://t0ken@host), becomes "xxxxx", and so does the
// value of every query parameter whose name holds "pass", "pwd", "secret", "token", "credential",
// "auth" or "signed" (password=, sentinel_password=, signed_entries=, ...). The rest is kept as written, so that the
// operator recognises the URL.
//
// It never fails. A URL that url.Parse rejects is redacted more broadly: a password holding an
// unescaped '/', '?' or '#' moves where a parser thinks the user information ends, so everything
// between "//" and the last '@' of the whole string is hidden, and a port that is not a number
// (redis://:secret, the "@host" forgotten) is hidden too. Redact costs a url.Parse and a few
// string copies; it is meant for error paths, not hot ones.
func Redact(rawURL string) string {
	s := rawURL
	_, err := url.Parse(s)
	unparsable := err != nil
	if unparsable {
		scheme := schemeOf(s)
		start := len(scheme)
		if strings.HasPrefix(s[start:], "//") {
			start += 2
		}
		if i := strings.LastIndexByte(s[start:], '@'); i >= 0 {
			s = s[:start] + redacted + s[start+i:]
		}
	}
	rest, frag, hasFrag := strings.Cut(s, "#")
	rest, query, hasQuery := strings.Cut(rest, "?")
	scheme := schemeOf(rest)
	hier := rest[len(scheme):]
	if auth, ok := strings.CutPrefix(hier, "//"); ok {
		path := ""
		if i := strings.IndexByte(auth, '/'); i >= 0 {
			auth, path = auth[:i], auth[i:]
		}
		if i := strings.LastIndexByte(auth, '@'); i >= 0 {
			auth = redacted + auth[i:]
		} else if i := strings.LastIndexByte(auth, ':'); unparsable && i > strings.LastIndexByte(auth, ']') && !digits(auth[i+1:]) {
			auth = auth[:i+1] + redacted // not a port: a password without its "@host"
		}
		hier = "//" + auth + path
	} else if i := strings.LastIndexByte(hier, '@'); i >= 0 {
		hier = redacted + hier[i:] // opaque: scheme:user:password@host
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(scheme)
	b.WriteString(hier)
	if hasQuery {
		b.WriteByte('?')
		b.WriteString(redactQuery(query))
	}
	if hasFrag {
		b.WriteByte('#')
		b.WriteString(frag)
	}
	return b.String()
}

// ParseURL is url.Parse for URLs that may hold a password. Its error is a *url.Error that shows
// the URL as Redact returns it, with a cause found by parsing that text again: url.Parse's own
// error quotes the whole URL, and some of its causes (invalid port ":secret") quote part of it.
// When the redacted text parses, the fault was inside what Redact hid, and the cause says only
// that.
func ParseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err == nil {
		return u, nil
	}
	shown := Redact(rawURL)
	var ue *url.Error
	if _, err := url.Parse(shown); errors.As(err, &ue) {
		return nil, ue
	}
	return nil, &url.Error{Op: "parse", URL: shown, Err: errors.New("malformed user information or password parameter")}
}

// redactQuery hides the values of the secret parameters of a raw query, keeping the others as
// written (url.Values.Encode would reorder and re-escape them).
func redactQuery(query string) string {
	parts := strings.Split(query, "&")
	for i, p := range parts {
		rawName, _, hasValue := strings.Cut(p, "=")
		name := rawName
		if n, err := url.QueryUnescape(rawName); err == nil {
			name = n
		}
		if hasValue && secretParam(name) {
			parts[i] = rawName + "=" + redacted
		}
	}
	return strings.Join(parts, "&")
}

func secretParam(name string) bool {
	name = strings.ToLower(name)
	for _, s := range secretParams {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// schemeOf returns the scheme of s with its colon ("redis:"), or "" when s has none, by
// url.Parse's rule: a letter, then letters, digits, '+', '-' or '.', then ':'.
func schemeOf(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.':
			if i == 0 {
				return ""
			}
		case c == ':' && i > 0:
			return s[:i+1]
		default:
			return ""
		}
	}
	return ""
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
