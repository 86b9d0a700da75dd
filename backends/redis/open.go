package redis

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	goredis "github.com/redis/go-redis/v9"
)

func init() {
	for _, scheme := range []string{"redis", "rediss"} {
		if err := backends.Register(scheme, Open); err != nil {
			panic(err)
		}
	}
}

// Open is the backends.Opener for "redis" and "rediss" URLs (see the package documentation): it
// takes the backend's own query parameters, prefix and default_ttl, out of u, hands the rest to
// goredis.ParseURL, and returns a backend on a new single-node client that it owns
// (WithCloseClient). rediss enables TLS as go-redis does (server name from the host, TLS 1.2 at
// least, skip_verify=true to skip verification). An unknown or repeated parameter, a bad
// duration, number or database is an error naming it; errors never show the password. The
// client has ContextTimeoutEnabled set, so that every call ends by its context's deadline even
// on a server that never answers (see New). Open does no I/O: the client connects at the first
// command.
func Open(u *url.URL) (backends.Backend, error) {
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("redis: scheme %q: want redis or rediss", u.Scheme)
	}
	if u.Opaque != "" || u.Fragment != "" {
		return nil, errors.New("redis: want a URL of the form redis://[user:password@]host[:port][/db][?param=value&...]")
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		// Not err: its escape ("%zz") may be part of a password. The query, redacted, locates it.
		return nil, fmt.Errorf("redis: query %q: a %% not followed by two hex digits, or a ';'", backends.Redact("?"+u.RawQuery))
	}
	opts := []Option{WithCloseClient()}
	var dialerRetries int
	var dialerRetryTimeout time.Duration
	for _, name := range slices.Sorted(maps.Keys(query)) { // sorted: the same error every time
		values := query[name]
		if len(values) != 1 {
			return nil, fmt.Errorf("redis: parameter %q given %d times", name, len(values))
		}
		v := values[0]
		switch name {
		case "prefix":
			opts = append(opts, WithPrefix(v))
		case "default_ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("redis: parameter default_ttl=%q: want a duration >= 0, such as 24h", v)
			}
			opts = append(opts, WithDefaultTTL(d))
		case "dialer_retries": // not known to ParseURL, and the one setting that makes a down server fail fast
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("redis: parameter dialer_retries=%q: want a whole number >= 1", v)
			}
			dialerRetries = n
		case "dialer_retry_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("redis: parameter dialer_retry_timeout=%q: want a positive duration, such as 50ms", v)
			}
			dialerRetryTimeout = d
		default:
			continue // go-redis's, or unknown: ParseURL decides
		}
		delete(query, name)
	}
	rest := *u
	rest.RawQuery = query.Encode()
	clientOpts, err := goredis.ParseURL(rest.String())
	if err != nil {
		// A url.Error would quote the URL, password included: keep only its cause. go-redis's
		// own errors ("redis: unexpected option: x", "redis: invalid database number: ...") name
		// what is wrong and not the URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	// Without it go-redis sets a connection's deadlines from ReadTimeout and WriteTimeout (5s
	// each by default, and a read that times out is retried) and never from the context: a call
	// with a 200ms deadline waited 5s on a server that accepts connections and never answers.
	clientOpts.ContextTimeoutEnabled = true
	if dialerRetries > 0 {
		clientOpts.DialerRetries = dialerRetries
	}
	if dialerRetryTimeout > 0 {
		clientOpts.DialerRetryTimeout = dialerRetryTimeout
	}
	return New(goredis.NewClient(clientOpts), opts...), nil
}
