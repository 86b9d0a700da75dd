package config

import "testing"

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"expiraton", "expiration", 1},
		{"lock_timout", "lock_timeout", 1},
		{"kitten", "sitting", 3},
		{"same", "same", 0},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// A suggestion is the nearest candidate, and only one close enough to be the name meant.
func TestNearestSuggestsOnlyCloseNames(t *testing.T) {
	fields := regionFieldNames()
	for _, tc := range []struct{ name, want string }{
		{"expiraton", "expiration"},
		{"Expiration", "expiration"},
		{"storagettl", "storage_ttl"},
		{"colour", ""},
		{"expiration", ""}, // itself: no suggestion
		{"DOGPILE_USER_BACKEND", "DOGPILE_USERS_BACKEND"},
	} {
		cands := fields
		if tc.name[0] == 'D' {
			cands = []string{"DOGPILE_USERS_BACKEND", "DOGPILE_SESSIONS_BACKEND"}
		}
		if got := nearest(tc.name, cands); got != tc.want {
			t.Errorf("nearest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := nearest("DOGPILE_BILLING_BACKEND", []string{"DOGPILE_USERS_BACKEND"}); got != "" {
		t.Errorf("another program's region: suggested %q", got)
	}
}
