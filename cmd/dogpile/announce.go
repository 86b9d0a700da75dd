package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/dogpile-go/dogpile/backends"
)

// announceKeys tells the processes of the target's region that keys (as stored, before the
// backend's prefix) changed, so that they drop them from their local caches at once: what a
// region with a local cache publishes after its writes (region.WithLocalCache). Region.Delete
// and DeleteMulti announce their own keys; this is for the keys -match deleted, which no region
// call deletes. The message is the region's wire format: on the Notifier channel
// "region\x00<name>", "k:<origin>:<JSON array of the keys' bytes>" (bytes in JSON are base64,
// since keys need not be UTF-8), the origin telling the sender's own messages from others'. One
// PUBLISH per matchBatch keys.
func announceKeys(ctx context.Context, t *target, keys []string) error {
	n, ok := backends.As[backends.Notifier](t.backend)
	if !ok || t.region == nil {
		return nil
	}
	var o [8]byte
	_, _ = crand.Read(o[:])
	origin := "cli-" + hex.EncodeToString(o[:])
	for len(keys) > 0 {
		batch := keys[:min(len(keys), matchBatch)]
		keys = keys[len(batch):]
		raw := make([][]byte, len(batch))
		for i, k := range batch {
			raw[i] = []byte(k)
		}
		js, err := json.Marshal(raw)
		if err != nil {
			return err
		}
		msg := append([]byte("k:"+origin+":"), js...)
		if err := n.Publish(ctx, "region\x00"+t.region.Name(), msg); err != nil {
			return fmt.Errorf("announce %d deleted key(s) to the processes of region %q: %w", len(batch), t.region.Name(), err)
		}
	}
	return nil
}
