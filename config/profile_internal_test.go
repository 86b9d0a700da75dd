package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A profile's region replaces the fields it sets; arguments are merged unless it sets a backend,
// whose arguments replace the document's; the document's own entries are left unchanged.
func TestProfileMergesFieldByField(t *testing.T) {
	two := 2
	base := map[string]Region{"users": {Backend: "redis://a", Arguments: map[string]any{"prefix": "app:", "db": float64(1)}, Expiration: "10m", LockTimeout: "5s"}}
	for _, tc := range []struct {
		name string
		over Region
		want Region
		from map[string]string
	}{
		{"a setting", Region{Expiration: "1m", BackgroundRefresh: &two},
			Region{Backend: "redis://a", Arguments: map[string]any{"prefix": "app:", "db": float64(1)}, Expiration: "1m", LockTimeout: "5s", BackgroundRefresh: &two},
			map[string]string{"expiration": "p", "background_refresh": "p"}},
		{"arguments", Region{Arguments: map[string]any{"prefix": "stg:"}},
			Region{Backend: "redis://a", Arguments: map[string]any{"prefix": "stg:", "db": float64(1)}, Expiration: "10m", LockTimeout: "5s"},
			map[string]string{"arguments.prefix": "p"}},
		{"a backend", Region{Backend: "memory://"},
			Region{Backend: "memory://", Expiration: "10m", LockTimeout: "5s"},
			map[string]string{"backend": "p", "arguments": "p"}},
		{"nothing", Region{}, base["users"], map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Document{Regions: base, Profiles: map[string]Profile{"p": {Regions: map[string]Region{"users": tc.over}}}}
			got, err := d.withProfile("p", EnvProfile)
			if err != nil {
				t.Fatal(err)
			}
			g := got["users"]
			for k, v := range g.src.fields {
				if v == "profiles.p.regions.users" {
					g.src.fields[k] = "p"
				}
			}
			if diff := cmp.Diff(tc.from, g.src.fields); diff != "" {
				t.Errorf("sources (-want +got):\n%s", diff)
			}
			g.src = source{}
			if diff := cmp.Diff(tc.want, g, cmp.AllowUnexported(Region{}, source{})); diff != "" {
				t.Errorf("merged (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]any{"prefix": "app:", "db": float64(1)}, base["users"].Arguments); diff != "" {
				t.Errorf("the document's arguments changed:\n%s", diff)
			}
		})
	}
}
