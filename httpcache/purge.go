package httpcache

import (
	"context"
	"net/http"

	"github.com/dogpile-go/dogpile/region"
)

// Purge removes the cached responses of rawURL (of GET and HEAD, every variant), in every
// process: it deletes the URL's entries (region.Region.DeleteMulti: one backend round trip, and
// an announcement to other processes' local caches where the region has one), and a creation of
// them in progress will not store over the deletion. The key is the one a request without
// credentials for rawURL has, under the Cache's options (WithKeyFunc, WithIgnoreQuery): a handler
// with key options of its own, or responses keyed by WithCredentialedKey, are reached by PurgeTag
// or PurgeAll instead.
func (c *Cache) Purge(ctx context.Context, rawURL string) error {
	var keys []string
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r, err := http.NewRequestWithContext(ctx, m, rawURL, nil)
		if err != nil {
			return err
		}
		if k, ok := c.cfg.key(r); ok {
			keys = append(keys, k)
		}
	}
	return c.entries.DeleteMulti(ctx, keys)
}

// PurgeTag makes every response tagged tag (by the tag header, WithTagHeader) absent, in every
// process: the tag gets a new generation, part of the key of every tagged response, so that the
// next request for each runs its handler (once, under the dogpile lock). It costs one backend
// write, and an announcement to other processes' local caches where the region has one. The old
// entries are not deleted: they age out of the backend (region.WithStorageTTL, or eviction).
func (c *Cache) PurgeTag(ctx context.Context, tag string) error {
	g, _ := newGeneration(ctx)
	return c.tags.Set(ctx, tagKey(tag), g)
}

// PurgeAll makes every entry of the Cache's region absent, in this process and, when the region
// shares its invalidations (region.WithSharedInvalidation), in every process: it is
// region.Region.Invalidate(ctx, region.Hard), and applies to whatever else the region holds.
// Without region.WithSharedInvalidation the other processes, their local caches included
// (region.WithLocalCache), serve their entries until these expire; with it they stop at once on a
// backend that broadcasts (Redis pub/sub), and within the option's poll on the others.
func (c *Cache) PurgeAll(ctx context.Context) error {
	return c.region.Invalidate(ctx, region.Hard)
}
