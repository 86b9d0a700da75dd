package httpcache

import (
	"net/http"
	"strings"
)

// notModified reports whether r's conditions let the cache answer 304 for e (RFC 9110 section
// 13.2.2): If-None-Match when present (weak comparison, "*" matches any), otherwise
// If-Modified-Since against Last-Modified, or Date when there is none.
func notModified(r *http.Request, e *entry) bool {
	if inm := r.Header.Values("If-None-Match"); len(inm) > 0 {
		etag := weak(e.header.Get("Etag"))
		for _, v := range inm {
			for t := range strings.SplitSeq(v, ",") {
				if t = strings.TrimSpace(t); t == "*" || (etag != "" && weak(t) == etag) {
					return true
				}
			}
		}
		return false
	}
	ims := r.Header.Get("If-Modified-Since")
	if ims == "" {
		return false
	}
	since, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	lm := e.header.Get("Last-Modified")
	if lm == "" {
		lm = e.header.Get("Date")
	}
	mod, err := http.ParseTime(lm)
	return err == nil && !mod.After(since)
}

// weak strips an entity tag's weakness mark, for the weak comparison.
func weak(t string) string { return strings.TrimPrefix(t, "W/") }
