package fleettest_test

import (
	"testing"

	"github.com/dogpile-go/dogpile/internal/fleettest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	fleettest.MaybeChild()
	goleak.VerifyTestMain(m)
}
