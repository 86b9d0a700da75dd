package region_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/region"
)

func TestConfigureWith(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	r := region.New("cw", clk.option())
	defer r.Close()
	refused := memory.New()
	defer refused.Close() // not taken by a failed ConfigureWith: still the caller's
	if err := r.ConfigureWith(refused, region.WithExpiration(time.Minute), region.WithStorageTTL(time.Second)); err == nil {
		t.Fatal("storage TTL shorter than the expiration accepted")
	}
	if r.Configured() {
		t.Fatal("a failed ConfigureWith configured the region")
	}
	if err := r.ConfigureWith(memory.New(), region.WithExpiration(time.Minute), region.WithBackgroundRefresh(1)); err != nil {
		t.Fatal(err)
	}
	second := memory.New()
	defer second.Close()
	if err := r.ConfigureWith(second); !errors.Is(err, region.ErrAlreadyConfigured) {
		t.Errorf("second ConfigureWith: %v", err)
	}
	v := region.NewView[string](r)
	if err := v.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Minute) // expired under the configured expiration
	release := make(chan struct{})
	got, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) { <-release; return "new", nil })
	if err != nil || got != "old" {
		t.Errorf("with the background refresh given at Configure: %q, %v; want the old value at once", got, err)
	}
	close(release)
}
