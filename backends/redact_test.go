package backends

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// TestRedact: the user information and secret parameters are hidden, whether the URL parses or
// not, and the rest is kept as written.
func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// No secret: unchanged, byte for byte.
		{"redis://127.0.0.1:6379/0?prefix=app:&dial_timeout=1s", "redis://127.0.0.1:6379/0?prefix=app:&dial_timeout=1s"},
		{"memory://", "memory://"},
		{"memcached://h1:11211,h2:11211?prefix=p%3A", "memcached://h1:11211,h2:11211?prefix=p%3A"},
		{"file:///var/cache/app?max_size=1GB", "file:///var/cache/app?max_size=1GB"},
		{"redis://[::1]:6379/0", "redis://[::1]:6379/0"},
		{"", ""},
		// User information: all of it, a name or token alone included.
		{"redis://user:s3cret@host:6379/0", "redis://xxxxx@host:6379/0"},
		{"redis://:s3cret@host:6379", "redis://xxxxx@host:6379"},
		{"redis://t0ken@host", "redis://xxxxx@host"},
		{"rediss://user:p%40ss@host/0?prefix=a", "rediss://xxxxx@host/0?prefix=a"},
		{"redis:user:s3cret@host", "redis:xxxxx@host"},
		// Query parameters that hold secrets.
		{"redis://host/0?password=s3cret", "redis://host/0?password=xxxxx"},
		{"redis://host/0?signed_entries=k1:c2VjcmV0", "redis://host/0?signed_entries=xxxxx"},
		{"redis://host/0?prefix=a&sentinel_password=s3cret&db=1", "redis://host/0?prefix=a&sentinel_password=xxxxx&db=1"},
		{"redis://host/0?PASSWORD=s3cret&Auth_Token=t0ken", "redis://host/0?PASSWORD=xxxxx&Auth_Token=xxxxx"},
		{"redis://host/0?pass%77ord=s3cret", "redis://host/0?pass%77ord=xxxxx"},
		{"redis://host/0?password=s3cret#frag", "redis://host/0?password=xxxxx#frag"},
		{"?password=s3cret&x=1", "?password=xxxxx&x=1"},
		// Both.
		{"redis://u:s3cret@host/0?password=s3cret&prefix=p", "redis://xxxxx@host/0?password=xxxxx&prefix=p"},
		// URLs that do not parse.
		{"redis://:s3cret@[::1", "redis://xxxxx@[::1"},
		{"redis://:s3cret", "redis://:xxxxx"},                         // "@host" forgotten: not a port
		{"redis://admin:s3cret", "redis://admin:xxxxx"},               // likewise
		{"redis://:s3#cret@host:6379/0", "redis://xxxxx@host:6379/0"}, // '#' unescaped in the password
		{"redis://:s3?cret@host:6379/0", "redis://xxxxx@host:6379/0"}, // '?' likewise
		{"redis://u:s3cret@host:6379/0?password=s3%zz", "redis://xxxxx@host:6379/0?password=xxxxx"},
		{"redis://u:s3%zzcret@host", "redis://xxxxx@host"},
		{"redis://u:s3cret@ho st/0", "redis://xxxxx@ho st/0"},
		{"redis://u:s3cret\x7f@host", "redis://xxxxx@host"},
		{":s3cret@host", "xxxxx@host"}, // no scheme: does not parse, hidden all the same
	} {
		got := Redact(tc.in)
		if got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestParseURLRedacts: a URL that does not parse yields a *url.Error whose text has no secret.
func TestParseURLRedacts(t *testing.T) {
	for _, raw := range []string{
		"redis://:s3cr3t@[::1",
		"redis://:s3cr3t",
		"redis://admin:s3cr3t",
		"redis://:s3#cret@host:6379/0",
		"redis://u:s3%zzcret@host",
		"redis://u:s3cr3t\x7f@host",
		"redis://u:s3cr3t@ho st/0?password=s3cr3t",
	} {
		u, err := ParseURL(raw)
		if err == nil {
			t.Errorf("ParseURL(%q) = %v, want an error", raw, u)
			continue
		}
		var ue *url.Error
		if !errors.As(err, &ue) {
			t.Errorf("ParseURL(%q) error %T, want a *url.Error", raw, err)
		}
		if strings.Contains(err.Error(), "s3") || strings.Contains(err.Error(), "cr3t") {
			t.Errorf("ParseURL(%q) error shows the password: %v", raw, err)
		}
	}
	if u, err := ParseURL("redis://u:p@host/0"); err != nil || u.Host != "host" {
		t.Errorf("ParseURL of a valid URL: %v, %v", u, err)
	}
}
