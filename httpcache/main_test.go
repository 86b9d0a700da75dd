package httpcache_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	maybeFleetChild()
	maybePurgeChild()
	goleak.VerifyTestMain(m)
}
