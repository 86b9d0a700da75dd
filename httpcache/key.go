package httpcache

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// key returns the request's primary key and whether it may be cached at all.
func (c *config) key(r *http.Request) (string, bool) {
	var k string
	if c.keyFunc != nil {
		var ok bool
		if k, ok = c.keyFunc(r); !ok {
			return "", false
		}
	} else {
		k = defaultKey(r, c.ignoreQuery)
	}
	if r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" {
		if c.credKey == nil {
			return "", false
		}
		who, ok := c.credKey(r)
		if !ok {
			return "", false
		}
		k += "\x00u" + strconv.Itoa(len(who)) + ":" + who
	}
	return k, true
}

// defaultKey is method, scheme, host (lower case), escaped path and the query's parameters in
// sorted order, less the ignored ones: "GET https://example.com/a?x=1&y=2".
func defaultKey(r *http.Request, ignore map[string]bool) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	path := r.URL.EscapedPath()
	q := r.URL.RawQuery
	if q != "" {
		params := strings.Split(q, "&")
		if len(ignore) > 0 {
			params = slices.DeleteFunc(params, func(p string) bool {
				name, _, _ := strings.Cut(p, "=")
				if n, err := url.QueryUnescape(name); err == nil {
					name = n
				}
				return ignore[name] || p == ""
			})
		}
		slices.Sort(params)
		q = strings.Join(params, "&")
	}
	var b strings.Builder
	b.Grow(len(r.Method) + len(scheme) + len(r.Host) + len(path) + len(q) + 5)
	b.WriteString(r.Method)
	b.WriteByte(' ')
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(strings.ToLower(r.Host))
	b.WriteString(path)
	if q != "" {
		b.WriteByte('?')
		b.WriteString(q)
	}
	return b.String()
}

// variantKey is the key of the variant of primary that r selects under meta: the meta entry's
// id (a new one after every purge or regeneration of it), the values r has for each of meta's
// Vary names and the current generation of each of its tags, all length-prefixed.
func variantKey(primary string, meta *entry, r *http.Request, gens []uint64) string {
	var b strings.Builder
	b.WriteString(primary)
	b.WriteString("\x00v")
	b.WriteString(strconv.FormatUint(meta.id, 36))
	for _, name := range meta.vary {
		v := strings.Join(r.Header.Values(name), ", ")
		b.WriteByte(0)
		b.WriteString(strconv.Itoa(len(v)))
		b.WriteByte(':')
		b.WriteString(v)
	}
	for _, g := range gens {
		b.WriteString("\x00t")
		b.WriteString(strconv.FormatUint(g, 36))
	}
	return b.String()
}

// tagKey is the key under which a tag's generation is stored.
func tagKey(tag string) string { return "httpcache\x00tag\x00" + tag }
