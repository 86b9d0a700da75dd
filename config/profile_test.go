package config_test

import (
	"testing"

	"github.com/dogpile-go/dogpile/config"
)

// profiledDoc has one base and two profiles: staging changes a setting, dev the backend.
const profiledDoc = `regions:
  users:
    backend: memory://
    arguments: {max_entries: 100}
    expiration: 10m
profiles:
  staging:
    regions:
      users: {expiration: 1m}
      reports: {backend: null://}
  dev:
    regions:
      users: {backend: null://}
`

// The profile DOGPILE_PROFILE names is merged over the document's regions; with none named, the
// regions alone apply.
func TestProfileSelectsASectionOfTheDocument(t *testing.T) {
	d, err := config.Parse([]byte(profiledDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		profile string
		regions []string
		backend string
	}{
		{"", []string{"users"}, "*memory.Backend"},
		// The document's max_entries does not reach null://, which refuses every argument.
		{"dev", []string{"users"}, "*null.Backend"},
		// A region only the profile has.
		{"staging", []string{"users", "reports"}, "*memory.Backend"},
	} {
		t.Run("profile="+tc.profile, func(t *testing.T) {
			rs := newRegions(t, tc.regions...)
			env := []string{config.EnvProfile + "=" + tc.profile}
			if err := (config.Options{Strict: true, Env: env}).Configure(d, rs...); err != nil {
				t.Fatal(err)
			}
			if got := backendOf(rs[0]); got != tc.backend {
				t.Errorf("users: %s, want %s", got, tc.backend)
			}
		})
	}
	// Without the profile, reports is not in the document.
	err = config.Options{Strict: true, Env: []string{}}.Configure(d, newRegions(t, "users", "reports")...)
	wantErr(t, err, "regions.reports.backend: missing")
}

// Options.Profile wins over DOGPILE_PROFILE, as a path given to Load wins over DOGPILE_CONFIG.
func TestOptionsProfileWinsOverTheEnvironment(t *testing.T) {
	d, err := config.Parse([]byte(profiledDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := newRegions(t, "users")[0]
	if err := (config.Options{Profile: "dev", Env: []string{"DOGPILE_PROFILE=nosuch"}}).Configure(d, r); err != nil {
		t.Fatal(err)
	}
	if got := backendOf(r); got != "*null.Backend" {
		t.Errorf("users: %s, want dev's *null.Backend", got)
	}
}

// A profile the document does not have is an error naming the profiles it has and the nearest.
func TestUnknownProfileNamesTheKnown(t *testing.T) {
	path := writeFile(t, "cache.yaml", profiledDoc)
	r := newRegions(t, "users")[0]
	err := config.Options{Env: []string{"DOGPILE_PROFILE=stagng"}}.Load(path, r)
	wantErr(t, err, `config: profile "stagng" (from DOGPILE_PROFILE) is not in `+path+` (did you mean staging?); its profiles: dev, staging`)
	if r.Configured() {
		t.Error("configured")
	}
	err = config.Options{Profile: "prod", Env: []string{}}.Load(path, r)
	wantErr(t, err, `config: profile "prod" (from Options.Profile) is not in `+path+`; its profiles: dev, staging`)

	d, err := config.Parse([]byte("regions:\n  users: {backend: memory://}\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = config.Configure(d, func(k string) string { return map[string]string{"DOGPILE_PROFILE": "staging"}[k] }, r)
	wantErr(t, err, `config: profile "staging" (from DOGPILE_PROFILE): the document has no profiles`)
}

// An error in a profile names the profile's entry and its line, not the document's region.
func TestErrorInProfileNamesIt(t *testing.T) {
	path := writeFile(t, "cache.yaml", profiledDoc+"  broken:\n    regions:\n      users:\n        jitter: 2\n")
	err := config.Options{Profile: "broken", Env: []string{}}.Load(path, newRegions(t, "users")...)
	wantErr(t, err, path+":17: profiles.broken.regions.users.jitter: ")

	_, err = config.Parse([]byte("profiles:\n  staging:\n    region: {}\n"))
	wantErr(t, err, `line 3: profiles.staging: unknown field "region" (did you mean regions?)`)
}
