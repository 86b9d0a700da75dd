package httpcache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// defaultStatuses are the status codes RFC 9110 (section 15.1) calls heuristically cacheable.
var defaultStatuses = []int{200, 203, 204, 300, 301, 404, 405, 410, 414, 501}

// hopByHop are the fields that describe one connection, not the response (RFC 9110 section 7.6.1);
// the fields a response's Connection header names are dropped too.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// cacheControl is what the cache reads of a Cache-Control header. Durations are -1 when absent.
type cacheControl struct {
	noStore, noCache, private bool
	maxAge, sMaxAge           time.Duration
}

// parseCacheControl reads the directives of every Cache-Control field in h (RFC 9111 section
// 5.2): names are case-insensitive, a value may be quoted, unknown directives are ignored, and a
// max-age that is not a number makes the response stale (0), as section 4.2.1 asks.
func parseCacheControl(values []string) cacheControl {
	cc := cacheControl{maxAge: -1, sMaxAge: -1}
	for _, v := range values {
		for d := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			arg = strings.Trim(strings.TrimSpace(arg), `"`)
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store":
				cc.noStore = true
			case "no-cache":
				cc.noCache = true
			case "private":
				cc.private = true
			case "max-age":
				cc.maxAge = seconds(arg)
			case "s-maxage":
				cc.sMaxAge = seconds(arg)
			}
		}
	}
	return cc
}

func seconds(s string) time.Duration {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	if n > int64(100*365*24*time.Hour/time.Second) {
		n = int64(100 * 365 * 24 * time.Hour / time.Second)
	}
	return time.Duration(n) * time.Second
}

// requestNoCache reports whether a request asks for a response from the origin: Cache-Control:
// no-cache (or max-age=0), or Pragma: no-cache without a Cache-Control.
func requestNoCache(h http.Header) bool {
	if cc := h.Values("Cache-Control"); len(cc) > 0 {
		c := parseCacheControl(cc)
		return c.noCache || c.maxAge == 0
	}
	for _, p := range h.Values("Pragma") {
		if strings.Contains(strings.ToLower(p), "no-cache") {
			return true
		}
	}
	return false
}

// uncacheable says why a response cannot be stored, or "" when it can.
type reason string

const (
	reasonStatus    reason = "status"
	reasonNoStore   reason = "no-store"
	reasonPrivate   reason = "private"
	reasonNoCache   reason = "no-cache"
	reasonSetCookie reason = "set-cookie"
	reasonVaryStar  reason = "vary-star"
	reasonTrailer   reason = "trailer"
	reasonLifetime  reason = "lifetime"
	reasonTooLarge  reason = "too-large"
)

// judge decides whether a response of status with header h may be stored by a shared cache, and
// for how long it is fresh: s-maxage, then max-age, then Expires minus Date, then def (RFC 9111
// sections 3 and 4.2.1). A lifetime of zero or less is not worth storing.
func (c *config) judge(status int, h http.Header, now time.Time) (time.Duration, reason) {
	if !c.statuses[status] {
		return 0, reasonStatus
	}
	cc := parseCacheControl(h.Values("Cache-Control"))
	switch {
	case cc.noStore:
		return 0, reasonNoStore
	case cc.private:
		return 0, reasonPrivate
	case cc.noCache:
		return 0, reasonNoCache
	case len(h.Values("Set-Cookie")) > 0:
		return 0, reasonSetCookie
	case h.Get("Trailer") != "" || hasTrailerPrefix(h):
		return 0, reasonTrailer
	}
	for _, v := range h.Values("Vary") {
		if strings.Contains(v, "*") {
			return 0, reasonVaryStar
		}
	}
	if n := h.Get("Content-Length"); n != "" {
		if size, err := strconv.ParseInt(n, 10, 64); err == nil && size > c.maxBody {
			return 0, reasonTooLarge
		}
	}
	ttl := c.defaultTTL
	switch {
	case cc.sMaxAge >= 0:
		ttl = cc.sMaxAge
	case cc.maxAge >= 0:
		ttl = cc.maxAge
	case len(h.Values("Expires")) > 0:
		exp, err := http.ParseTime(h.Get("Expires"))
		if err != nil {
			return 0, reasonLifetime // an invalid Expires means already expired
		}
		date := now
		if d, err := http.ParseTime(h.Get("Date")); err == nil {
			date = d
		}
		ttl = exp.Sub(date)
	}
	if ttl <= 0 {
		return 0, reasonLifetime
	}
	return ttl, ""
}

func hasTrailerPrefix(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// storedHeader is the copy of h that an entry replays: hop-by-hop fields, the tag header and
// Content-Length (recomputed from the body) dropped, every value slice clipped so that an append
// by a later handler copies instead of writing into the shared entry.
func (c *config) storedHeader(h http.Header) http.Header {
	drop := map[string]bool{"Content-Length": true}
	for _, k := range hopByHop {
		drop[k] = true
	}
	for _, v := range h.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			drop[http.CanonicalHeaderKey(strings.TrimSpace(f))] = true
		}
	}
	if c.tagHeader != "" {
		drop[c.tagHeader] = true
	}
	out := make(http.Header, len(h))
	for k, vs := range h {
		if !drop[k] && len(vs) > 0 {
			out[k] = append([]string(nil), vs...)[:len(vs):len(vs)]
		}
	}
	return out
}

// varyNames returns the canonical field names of h's Vary fields, in order, without duplicates.
func varyNames(h http.Header) []string {
	var names []string
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if f = http.CanonicalHeaderKey(strings.TrimSpace(f)); f != "" && !contains(names, f) {
				names = append(names, f)
			}
		}
	}
	return names
}

// tagList returns the tags of the tag header's fields (comma- or space-separated), without
// duplicates.
func (c *config) tagList(h http.Header) []string {
	if c.tagHeader == "" {
		return nil
	}
	var tags []string
	for _, v := range h.Values(c.tagHeader) {
		for _, t := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
			if !contains(tags, t) {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
