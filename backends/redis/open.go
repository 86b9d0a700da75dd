package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	goredis "github.com/redis/go-redis/v9"
)

// schemes are the names Open is registered under: "redis" (TCP) or "rediss" (TLS), alone for one
// server, followed by "+cluster" for a Redis Cluster and by "+sentinel" for a master that Redis
// Sentinel monitors.
var schemes = []string{"redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel"}

func init() {
	for _, scheme := range schemes {
		if err := backends.Register(scheme, Open); err != nil {
			panic(err)
		}
	}
}

// DefaultClusterStateReloadInterval is how often a Cluster client that Open builds reloads its
// slot map when no cluster_state_reload_interval is given: often enough that, after a failover,
// the client stops dialing a master that died within seconds rather than go-redis's minute (see
// the package documentation), at the cost of one CLUSTER SLOTS to one node per interval, sent only
// while the client is in use.
const DefaultClusterStateReloadInterval = 5 * time.Second

// Open is the backends.Opener for the schemes redis, rediss, redis+cluster, rediss+cluster,
// redis+sentinel and rediss+sentinel (see URLs in the package documentation).
// It takes the backend's own query parameters (prefix, default_ttl, dialer_retries,
// dialer_retry_timeout, and on a Cluster cluster_state_reload_interval) out of u, gives the
// rest, under the scheme redis or rediss, to go-redis's parser of the URL's form, and returns a
// backend on a new client that it owns (WithCloseClient):
//
//   - redis://, rediss://: goredis.ParseURL, a single-node goredis.Client.
//   - redis+cluster://, rediss+cluster://: goredis.ParseClusterURL, a goredis.ClusterClient; the
//     host and every addr parameter are seed nodes. The backend is backends.Partitioned.
//   - redis+sentinel://, rediss+sentinel://: goredis.ParseFailoverURL, a
//     goredis.NewFailoverClient that follows the master the sentinels name master_name; the host
//     and every addr parameter are sentinels.
//
// rediss enables TLS as go-redis does (server name from the host, skip_verify=true to skip
// verification), with TLS 1.2 at least. An unknown or repeated parameter (addr excepted, on a
// Cluster or Sentinel URL), a bad duration, number or database, a Sentinel URL without
// master_name, and a parameter that would make the client read from replicas only or panic
// (replica_only, route_by_latency, route_randomly on Sentinel) are errors naming them; errors
// never show a password. The client has ContextTimeoutEnabled set, so that every call ends by
// its context's deadline even on a server that never answers (see New). Open does no I/O: the
// client connects at the first command.
func Open(u *url.URL) (backends.Backend, error) {
	transport, deployment, _ := strings.Cut(u.Scheme, "+")
	if transport != "redis" && transport != "rediss" || deployment != "" && deployment != "cluster" && deployment != "sentinel" {
		return nil, fmt.Errorf("redis: scheme %q: want redis or rediss, or either followed by +cluster or +sentinel", u.Scheme)
	}
	if u.Opaque != "" || u.Fragment != "" {
		return nil, fmt.Errorf("redis: want a URL of the form %s", urlForm(u.Scheme, deployment))
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		// Not err: its escape ("%zz") may be part of a password. The query, redacted, locates it.
		return nil, fmt.Errorf("redis: query %q: a %% not followed by two hex digits, or a ';'", backends.Redact("?"+u.RawQuery))
	}
	if deployment != "" && strings.Contains(u.Host, ",") {
		// The grammar of other libraries' Cluster and Sentinel URLs (Lettuce, redis-sentinel-url).
		return nil, fmt.Errorf("redis: host %q: a %s:// URL has one host and names the others with addr=host:port parameters", u.Host, u.Scheme)
	}
	if deployment == "" {
		// go-redis's Cluster and Sentinel parameters, on a URL that names one server.
		if query.Has("addr") {
			return nil, fmt.Errorf("redis: parameter addr: a %s:// URL names one server; for a Redis Cluster, whose nodes addr names, write %s+cluster://", transport, transport)
		}
		if query.Has("master_name") {
			return nil, fmt.Errorf("redis: parameter master_name: a %s:// URL names one server; for a master that Sentinel monitors write %s+sentinel://", transport, transport)
		}
	}
	p, err := takeParams(query, transport, deployment)
	if err != nil {
		return nil, err
	}
	rest := *u
	rest.Scheme = transport
	rest.RawQuery = query.Encode()
	var client goredis.UniversalClient
	switch deployment {
	case "cluster":
		client, err = clusterClient(&rest, p)
	case "sentinel":
		client, err = sentinelClient(&rest, p)
	default:
		client, err = nodeClient(&rest, p)
	}
	if err != nil {
		return nil, err
	}
	return New(client, p.opts...), nil
}

// urlForm is the shape of a URL of scheme, for error messages.
func urlForm(scheme, deployment string) string {
	switch deployment {
	case "cluster":
		return scheme + "://[user:password@]host[:port][?addr=host:port&addr=...&param=value&...]"
	case "sentinel":
		return scheme + "://[user:password@]host[:port][/db]?master_name=name[&addr=host:port&...&param=value&...]"
	}
	return scheme + "://[user:password@]host[:port][/db][?param=value&...]"
}

// params are the query parameters Open takes itself: the backend's own, and the client settings
// that go-redis's parser of the URL's form lacks.
type params struct {
	opts               []Option
	dialerRetries      int           // 0: go-redis's
	dialerRetryTimeout time.Duration // 0: go-redis's
	clusterStateReload time.Duration // 0: DefaultClusterStateReloadInterval
	clusterSkipVerify  bool          // rediss+cluster: ParseClusterURL does not read skip_verify
}

// takeParams removes the parameters Open takes itself from query, leaving go-redis's (and the
// unknown ones, which go-redis rejects) in it.
func takeParams(query url.Values, transport, deployment string) (params, error) {
	var p params
	p.opts = []Option{WithCloseClient()}
	for _, name := range slices.Sorted(maps.Keys(query)) { // sorted: the same error every time
		values := query[name]
		if len(values) != 1 && (name != "addr" || deployment == "") {
			return p, fmt.Errorf("redis: parameter %q given %d times", name, len(values))
		}
		v := values[0]
		switch name {
		case "prefix":
			p.opts = append(p.opts, WithPrefix(v))
		case "default_ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return p, fmt.Errorf("redis: parameter default_ttl=%q: want a duration >= 0, such as 24h", v)
			}
			p.opts = append(p.opts, WithDefaultTTL(d))
		case "dialer_retries": // not known to ParseURL, and the one setting that makes a down server fail fast
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return p, fmt.Errorf("redis: parameter dialer_retries=%q: want a whole number >= 1", v)
			}
			p.dialerRetries = n
		case "dialer_retry_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return p, fmt.Errorf("redis: parameter dialer_retry_timeout=%q: want a positive duration, such as 50ms", v)
			}
			p.dialerRetryTimeout = d
		case "cluster_state_reload_interval":
			if deployment != "cluster" {
				continue // go-redis rejects it
			}
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return p, fmt.Errorf("redis: parameter cluster_state_reload_interval=%q: want a positive duration, such as 5s", v)
			}
			p.clusterStateReload = d
		case "skip_verify":
			if deployment != "cluster" || transport != "rediss" {
				continue // ParseURL and ParseFailoverURL take it on rediss and reject it on redis
			}
			switch v {
			case "true", "1":
				p.clusterSkipVerify = true
			case "false", "0", "":
			default:
				return p, fmt.Errorf("redis: parameter skip_verify=%q: want true or false", v)
			}
		default:
			continue // go-redis's, or unknown: go-redis's parser decides
		}
		delete(query, name)
	}
	return p, nil
}

// dialer sets the dialer settings of p that were given.
func (p params) dialer(retries *int, retryTimeout *time.Duration) {
	if p.dialerRetries > 0 {
		*retries = p.dialerRetries
	}
	if p.dialerRetryTimeout > 0 {
		*retryTimeout = p.dialerRetryTimeout
	}
}

func nodeClient(u *url.URL, p params) (goredis.UniversalClient, error) {
	o, err := goredis.ParseURL(u.String())
	if err != nil {
		return nil, parseError(err)
	}
	// Without it go-redis sets a connection's deadlines from ReadTimeout and WriteTimeout (5s
	// each by default, and a read that times out is retried) and never from the context: a call
	// with a 200ms deadline waited 5s on a server that accepts connections and never answers.
	o.ContextTimeoutEnabled = true
	p.dialer(&o.DialerRetries, &o.DialerRetryTimeout)
	return goredis.NewClient(o), nil
}

func clusterClient(u *url.URL, p params) (goredis.UniversalClient, error) {
	// ParseClusterURL ignores the path: a Cluster serves database 0 only.
	if u.Path != "" && u.Path != "/" && u.Path != "/0" {
		return nil, fmt.Errorf("redis: path %q: a Redis Cluster has database 0 only (no path, or /0)", u.Path)
	}
	u.Path, u.RawPath = "", ""
	o, err := goredis.ParseClusterURL(u.String())
	if err != nil {
		return nil, parseError(err)
	}
	o.ContextTimeoutEnabled = true // as in nodeClient
	p.dialer(&o.DialerRetries, &o.DialerRetryTimeout)
	o.ClusterStateReloadInterval = DefaultClusterStateReloadInterval
	if p.clusterStateReload > 0 {
		o.ClusterStateReloadInterval = p.clusterStateReload
	}
	if o.TLSConfig != nil {
		// What ParseURL and ParseFailoverURL set, and ParseClusterURL does not.
		o.TLSConfig.MinVersion = tls.VersionTLS12
		o.TLSConfig.InsecureSkipVerify = p.clusterSkipVerify
	}
	return goredis.NewClusterClient(o), nil
}

func sentinelClient(u *url.URL, p params) (goredis.UniversalClient, error) {
	if db := strings.Trim(u.Path, "/"); db != "" && strings.Trim(db, "0123456789") != "" {
		// The grammar of other libraries' Sentinel URLs: /mymaster or /mymaster/0.
		return nil, fmt.Errorf("redis: path %q: the path of a Sentinel URL is the database number; name the master with master_name=", u.Path)
	}
	o, err := goredis.ParseFailoverURL(u.String())
	if err != nil {
		return nil, parseError(err)
	}
	if o.MasterName == "" {
		return nil, errors.New("redis: a Sentinel URL needs master_name=<the name the sentinels monitor the master under>")
	}
	// NewFailoverClient panics on the first two, and the third sends writes (values, locks) to
	// a replica, which refuses them.
	for _, f := range []struct {
		name string
		set  bool
	}{{"replica_only", o.ReplicaOnly}, {"route_by_latency", o.RouteByLatency}, {"route_randomly", o.RouteRandomly}} {
		if f.set {
			return nil, fmt.Errorf("redis: parameter %s: a Sentinel backend reads and writes on the master only", f.name)
		}
	}
	o.ContextTimeoutEnabled = true // as in nodeClient
	p.dialer(&o.DialerRetries, &o.DialerRetryTimeout)
	return goredis.NewFailoverClient(o), nil
}

// parseError is err from a go-redis URL parser without the URL: a url.Error would quote it,
// password included, so only its cause is kept. go-redis's own errors ("redis: unexpected
// option: x", "redis: invalid database number: ...") name what is wrong and not the URL.
func parseError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
