// Package httpcache is net/http middleware that caches responses in a region, under the dogpile
// lock: concurrent requests for a cold or expired URL run its handler once, in one process or,
// on a backend with a distributed lock (Redis, memcached, files), in the whole fleet.
//
//	cache := region.New("pages", region.WithStaleIfError(time.Hour))
//	if err := cache.Configure(memory.New()); err != nil { ... }
//	http.ListenAndServe(":8080", httpcache.Handler(cache, mux))
//
// or per route, sharing one Cache (its statistics, its purges):
//
//	pages := httpcache.New(cache)
//	mux.Handle("/articles/", pages.Handler(articles, httpcache.WithDefaultMaxAge(5*time.Minute)))
//	mux.Handle("/search", pages.Handler(search, httpcache.WithIgnoreQuery("utm_source")))
//
// It behaves as a shared cache in front of the handler (RFC 9111): it honours the handler's
// Cache-Control (no-store, private, no-cache, max-age, s-maxage) and Expires, keeps variants
// apart by Vary, never stores responses that set cookies nor serves requests with credentials
// from the cache (unless WithCredentialedKey says how to key them), answers If-None-Match and
// If-Modified-Since with 304, and adds Age and X-Cache. A client's no-cache does not reach the
// handler unless WithClientBypass allows it. See Cache.Handler for the rules, and Stats for what
// is counted. It depends on the standard library and the region alone.
package httpcache
