package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/config"
	"github.com/dogpile-go/dogpile/region"
)

// writeFile writes data to a file named name in a directory of the test's and returns its path.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantErr fails t unless err says every one of parts.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one saying %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

// A misspelt field names the file, its line, the region and the field, and suggests the field
// meant, in YAML and in JSON alike, through ReadFile and Load; it never names the format wrongly.
func TestMisspeltFieldNamesFileLineRegionAndSuggestion(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"cache.yaml", "regions:\n  sessions:\n    backend: memory://\n  users:\n    backend: memory://\n    expiraton: 10m\n",
			`:6: regions.users: unknown field "expiraton" (did you mean expiration?)`},
		{"cache.json", "{\n  \"regions\": {\n    \"users\": {\n      \"backend\": \"memory://\",\n      \"lock_timout\": \"5s\"\n    }\n  }\n}\n",
			`:5: regions.users: unknown field "lock_timout" (did you mean lock_timeout?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.name, tc.data)
			_, err := config.ReadFile(path)
			wantErr(t, err, "config: "+path+tc.want)
			if strings.Contains(err.Error(), ": json: ") || strings.Contains(err.Error(), ": yaml: ") {
				t.Errorf("the error names a format: %v", err)
			}
			r := newRegions(t, "users")[0]
			wantErr(t, config.Options{Env: []string{}}.Load(path, r), path+tc.want)
			if r.Configured() {
				t.Error("configured from a document with an error")
			}
		})
	}
}

// A field far from every known one is listed with the known ones instead of a guess.
func TestUnknownFieldFarFromAllListsTheKnown(t *testing.T) {
	_, err := config.Parse([]byte("regions:\n  users:\n    colour: blue\n"))
	wantErr(t, err, `line 3: regions.users: unknown field "colour" (fields: arguments, backend,`)
}

// A value the region refuses is an error naming the file, the line and the field, found when the
// document is applied as when it is read.
func TestBadValueNamesFileAndLine(t *testing.T) {
	path := writeFile(t, "cache.yaml", "regions:\n  users:\n    backend: memory://\n    expiration: 10x\n    lock_timeout: 5s\n")
	err := config.Options{Env: []string{}}.Load(path, newRegions(t, "users")...)
	wantErr(t, err, path+":4: regions.users.expiration: ", `"10x" is not a duration`)

	path = writeFile(t, "cache.yaml", "regions:\n  users:\n    expiration: 1m\n")
	err = config.Options{Env: []string{}}.Load(path, newRegions(t, "users")...)
	wantErr(t, err, path+":2: regions.users.backend: missing (set it in the document or in DOGPILE_USERS_BACKEND)")
}

// Syntax errors say which format and which line.
func TestSyntaxErrorsNameFormatAndLine(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"c.yaml", "regions:\n  users: [\n", ":2: invalid YAML: "},
		{"c.json", "{\n  \"regions\": {\n    \"users\": {\"backend\": \"memory://\" \"expiration\": \"1m\"}\n  }\n}\n", ":3: invalid JSON: invalid character '\"' after object key:value pair"},
		// YAML's flow style looks like JSON and is read as YAML.
		{"c.yaml", "{regions: {users: {backend: memory://, expiraton: 1m}}}", `:1: regions.users: unknown field "expiraton" (did you mean expiration?)`},
		{"c.json", "{\"regions\": {\"users\": {\"backend\": \"memory:\\/\\/\"}}}", ": JSON that the YAML reader refuses: found unknown escape character"},
	} {
		path := writeFile(t, tc.name, tc.data)
		_, err := config.ReadFile(path)
		wantErr(t, err, path+tc.want)
	}
}

// YAML anchors, aliases and merge keys work, so that regions can share their settings.
func TestAliasesAndMergeKeys(t *testing.T) {
	d, err := config.Parse([]byte(`
defaults: &defaults
regions:
  users: &users
    backend: memory://
    expiration: 10m
    arguments: {max_entries: 10}
  sessions:
    <<: *users
    expiration: 1m
  tokens: *users
`))
	// "defaults" is no field: a document that keeps anchors at its top level gets an error, not
	// a silent pass.
	wantErr(t, err, `line 2: unknown field "defaults"`)

	d, err = config.Parse([]byte(`
regions:
  users: &users
    backend: memory://
    expiration: 10m
    arguments: {max_entries: 10}
  sessions:
    <<: *users
    expiration: 1m
  tokens: *users
`))
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Regions["sessions"]; s.Backend != "memory://" || s.Expiration != "1m" || s.Arguments["max_entries"] != float64(10) {
		t.Errorf("sessions: %+v; want users' backend and arguments, with its own expiration", s)
	}
	if tok := d.Regions["tokens"]; tok.Expiration != "10m" {
		t.Errorf("tokens: %+v; want users' settings", tok)
	}
}

// A document of aliases of aliases is refused quickly, as are merge keys of merge keys and a merge
// key naming the mapping it is in.
func TestAliasExpansionIsBounded(t *testing.T) {
	// 300 profiles, each of the same 300 regions, each of the same 300 arguments: 27 million
	// arguments from 20 kB.
	var b strings.Builder
	b.WriteString("profiles:\n  p0:\n    regions: &rs\n      r0: &r\n        backend: memory://\n        arguments:\n")
	for i := range 300 {
		fmt.Fprintf(&b, "          a%d: 1\n", i)
	}
	for i := 1; i < 300; i++ {
		fmt.Fprintf(&b, "      r%d: *r\n", i)
	}
	for i := 1; i < 300; i++ {
		fmt.Fprintf(&b, "  p%d: {regions: *rs}\n", i)
	}
	// Each mapping merges the one before it ten times: 10^12 keys from 1 kB.
	var m strings.Builder
	m.WriteString("regions:\n  r0: &m0 {backend: memory://}\n")
	for i := 1; i < 13; i++ {
		fmt.Fprintf(&m, "  r%d: &m%d {<<: [*m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d, *m%d]}\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	for _, doc := range []string{b.String(), m.String()} {
		start := time.Now()
		_, err := config.Parse([]byte(doc))
		wantErr(t, err, "the document expands to too much through aliases")
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	}

	_, err := config.Parse([]byte("regions:\n  users: &u\n    backend: memory://\n    <<: *u\n"))
	wantErr(t, err, "regions.users: a merge key (<<) refers to the mapping it is in")
}

// A document of regions only, as code writes it, configures as one read from a file: Parse keeps
// numbers of arguments as JSON has them.
func TestParsedArgumentsAreStringsNumbersAndBooleans(t *testing.T) {
	d, err := config.Parse([]byte("regions:\n  users: {backend: memory://, arguments: {max_entries: 0x10, copy: true, note: 2001-12-14}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	args := d.Regions["users"].Arguments
	if args["max_entries"] != float64(16) || args["copy"] != true || args["note"] != "2001-12-14" {
		t.Errorf("arguments %#v", args)
	}
	_ = region.ErrClosed
}
