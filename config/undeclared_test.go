package config_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/dogpile-go/dogpile/config"
)

// logTo returns a logger writing text to buf.
func logTo(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// sharedDoc is one file for two programs: this one declares users, the other billing.
const sharedDoc = "regions:\n  users:\n    backend: memory://\n  billing:\n    backend: null://\n"

// A region of the document that the program does not declare is another program's: skipped, with
// a warning naming it and its line, and the regions declared are configured.
func TestUndeclaredRegionIsSkippedWithAWarning(t *testing.T) {
	path := writeFile(t, "shared.yaml", sharedDoc)
	var log bytes.Buffer
	r := newRegions(t, "users")[0]
	if err := (config.Options{Logger: logTo(&log), Env: []string{}}).Load(path, r); err != nil {
		t.Fatal(err)
	}
	if !r.Configured() {
		t.Error("users not configured")
	}
	want := `level=WARN msg="config: skipped a region that this program does not declare" region=billing at=` + path + `:4 declared=users`
	if got := strings.TrimSpace(log.String()); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}

// Strict makes a region the program does not declare an error naming it, its line and the
// nearest region declared, and configures nothing.
func TestStrictRefusesUndeclaredRegion(t *testing.T) {
	path := writeFile(t, "cache.yaml", "regions:\n  users: {backend: memory://}\n  userz: {backend: memory://}\n")
	rs := newRegions(t, "users", "sessions")
	err := config.Options{Strict: true, Env: []string{"DOGPILE_SESSIONS_BACKEND=memory://"}}.Load(path, rs...)
	wantErr(t, err, "config: "+path+":3: regions.userz: no such region in this program (did you mean users?); its regions: sessions, users")
	for _, r := range rs {
		if r.Configured() {
			t.Errorf("%s configured", r.Name())
		}
	}
}

// A DOGPILE_ variable that names no field of a region declared, or no region, is reported with the
// variable meant: a warning, or in strict mode an error that configures nothing.
func TestMisspeltVariableIsReported(t *testing.T) {
	for _, tc := range []struct {
		name, variable, warning, err string
	}{
		{"field", "DOGPILE_USERS_EXPIRATON=1m",
			`msg="config: ignored an environment variable that names no field of its region" variable=DOGPILE_USERS_EXPIRATON region=users did_you_mean=DOGPILE_USERS_EXPIRATION`,
			"config: environment variable DOGPILE_USERS_EXPIRATON names no field of region users (did you mean DOGPILE_USERS_EXPIRATION?)"},
		{"region", "DOGPILE_USER_BACKEND=null://",
			`msg="config: ignored an environment variable that names no region of this program" variable=DOGPILE_USER_BACKEND regions="sessions, users" did_you_mean=DOGPILE_USERS_BACKEND`,
			"config: environment variable DOGPILE_USER_BACKEND names no region of this program (did you mean DOGPILE_USERS_BACKEND?); its regions: sessions, users"},
		{"another program's region", "DOGPILE_BILLING_BACKEND=null://",
			`msg="config: ignored an environment variable that names no region of this program" variable=DOGPILE_BILLING_BACKEND regions="sessions, users"` + "\n",
			"config: environment variable DOGPILE_BILLING_BACKEND names no region of this program; its regions: sessions, users"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{"DOGPILE_USERS_BACKEND=memory://", "DOGPILE_SESSIONS_BACKEND=memory://", "DOGPILE_PROFILE=", tc.variable}
			var log bytes.Buffer
			rs := newRegions(t, "users", "sessions")
			if err := (config.Options{Logger: logTo(&log), Env: env}).Load("", rs...); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(log.String(), tc.warning) {
				t.Errorf("log:\n%s\nwant:\n%s", log.String(), tc.warning)
			}
			if strings.Count(log.String(), "\n") != 1 {
				t.Errorf("log: want one warning, not:\n%s", log.String())
			}

			rs = newRegions(t, "users", "sessions")
			err := config.Options{Strict: true, Env: env}.Load("", rs...)
			if err == nil || err.Error() != tc.err {
				t.Errorf("strict: %v\nwant: %s", err, tc.err)
			}
			for _, r := range rs {
				if r.Configured() {
					t.Errorf("strict: %s configured", r.Name())
				}
			}
		})
	}
}

// Every variable of a declared region, and DOGPILE_CONFIG and DOGPILE_PROFILE, is known: a program
// whose environment names only those warns of nothing, even in strict mode.
func TestDeclaredVariablesAreNotReported(t *testing.T) {
	path := writeFile(t, "cache.yaml", "regions: {}\nprofiles: {staging: {}}\n")
	env := []string{"DOGPILE_CONFIG=" + path, "DOGPILE_PROFILE=staging", "DOGPILE_MY_CACHE_BACKEND=memory://",
		"DOGPILE_MY_CACHE_EXPIRATION=1m", "DOGPILE_MY_CACHE_CIRCUIT_BREAKER=off", "DOGPILE_MY_CACHE_SIGNED_ENTRIES=", "HOME=/"}
	var log bytes.Buffer
	if err := (config.Options{Strict: true, Logger: logTo(&log), Env: env}).Load("", newRegions(t, "my-cache")...); err != nil {
		t.Fatal(err)
	}
	if log.Len() > 0 {
		t.Errorf("log: %s", log.String())
	}
}

// Configure, given a getenv that cannot list the environment, reports no variables and keeps
// going; it skips an undeclared region as Options.Configure does.
func TestConfigureWithGetenvSkipsUndeclaredRegion(t *testing.T) {
	d, err := config.Parse([]byte(sharedDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := newRegions(t, "users")[0]
	if err := config.Configure(d, func(string) string { return "" }, r); err != nil {
		t.Fatal(err)
	}
	if !r.Configured() {
		t.Error("users not configured")
	}
}
