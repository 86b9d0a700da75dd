package wrap

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// LogMessage is the message of every record Log writes.
const LogMessage = "dogpile: backend call"

// Log returns a hook that logs every operation to logger at slog.LevelDebug, after it returns,
// with these attributes:
//
//   - "op": the operation (Op.String);
//   - "key" for a single-key operation, or "keys", the number of keys, for a multi-key one;
//   - "duration": how long the operation took, hook and backend (a time.Duration);
//   - "ttl" for writes and locks, when not zero;
//   - "bytes": for Set, SetMulti, SetIfNotNewer and SetMultiIfNotNewer the size of the values
//     written (or offered, for the conditional stores), for Get and GetMulti the size of the
//     values read;
//   - "hits" for Get, GetValue and GetMulti: the number of keys found (a miss is not an error
//     and is logged as "hits"=0);
//   - "taken" for TryLock and TryLockMulti: the number of locks taken;
//   - "refused" for SetIfNotNewer and SetMultiIfNotNewer: the number of keys not stored because
//     a newer entry was held (a refusal is not an error);
//   - "error", when the operation failed.
//
// Values are never logged, only their sizes. A nil logger means slog.Default(), looked up once,
// now. When the logger is not enabled for debug records, the hook costs one Enabled call and
// does not read the clock; otherwise it costs two clock reads and the record.
func Log(logger *slog.Logger) Hook {
	if logger == nil {
		logger = slog.Default()
	}
	return func(ctx context.Context, c *Call, next func(context.Context) error) error {
		if !logger.Enabled(ctx, slog.LevelDebug) {
			return next(ctx)
		}
		start := time.Now()
		err := next(ctx)
		d := time.Since(start)

		attrs := make([]slog.Attr, 0, 7)
		attrs = append(attrs, slog.String("op", c.Op.String()))
		if c.Keys == nil {
			attrs = append(attrs, slog.String("key", c.Key))
		} else {
			attrs = append(attrs, slog.Int("keys", len(c.Keys)))
		}
		attrs = append(attrs, slog.Duration("duration", d))
		if c.TTL != 0 {
			attrs = append(attrs, slog.Duration("ttl", c.TTL))
		}
		switch c.Op {
		case OpSet, OpSetMulti:
			attrs = append(attrs, slog.Int("bytes", c.Bytes))
		case OpSetIfNotNewer, OpSetMultiIfNotNewer:
			attrs = append(attrs, slog.Int("bytes", c.Bytes), slog.Int("refused", c.Refused))
		case OpGet, OpGetMulti:
			attrs = append(attrs, slog.Int("bytes", c.Bytes), slog.Int("hits", c.Hits))
		case OpGetValue:
			attrs = append(attrs, slog.Int("hits", c.Hits))
		case OpTryLock, OpTryLockMulti:
			attrs = append(attrs, slog.Int("taken", c.Taken))
		}
		if err != nil && !((c.Op == OpGet || c.Op == OpGetValue) && errors.Is(err, backends.ErrNotFound)) {
			attrs = append(attrs, slog.Any("error", err))
		}
		logger.LogAttrs(ctx, slog.LevelDebug, LogMessage, attrs...)
		return err
	}
}
