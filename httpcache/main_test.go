package httpcache_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	maybeFleetChild()
	goleak.VerifyTestMain(m)
}
