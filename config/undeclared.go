package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dogpile-go/dogpile/region"
)

// problem is something of the document or the environment that the program does not declare:
// a warning (message and attributes for slog), or in strict mode an error.
type problem struct {
	warning string
	attrs   []any
	err     error
}

// unknownRegions returns a problem for each of the document's regions (after its profile) that
// none of byName is named after, in the order of their names: it may be another program's.
func unknownRegions(d *Document, entries map[string]Region, byName map[string]*region.Region) []problem {
	declared := names(byName)
	var ps []problem
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		if byName[name] != nil {
			continue
		}
		path := entries[name].src.entryPath(name)
		hint := didYouMean(name, declared)
		attrs := []any{"region", name}
		if at := location(d.file, d.line(path)); at != "" {
			attrs = append(attrs, "at", at)
		}
		if s := nearest(name, declared); s != "" {
			attrs = append(attrs, "did_you_mean", s)
		}
		ps = append(ps, problem{
			warning: "config: skipped a region that this program does not declare",
			attrs:   append(attrs, "declared", strings.Join(declared, ", ")),
			err:     d.wrap(path, fmt.Errorf("no such region in this program%s; its regions: %s", hint, strings.Join(declared, ", "))),
		})
	}
	return ps
}

// unknownVariables returns a problem for each DOGPILE_ variable of environ, set to a value, that
// names no field of any of byName's regions, in the order of their names: a misspelling, or
// another program's region. A nil environ (one that cannot be listed) has none.
func unknownVariables(environ []string, byName map[string]*region.Region) []problem {
	valid := map[string]bool{EnvFile: true, EnvProfile: true}
	byRegion := map[string][]string{} // each region's variables
	for name := range byName {
		for _, f := range envFields() {
			v := EnvName(name, f)
			valid[v] = true
			byRegion[name] = append(byRegion[name], v)
		}
	}
	unknown := map[string]bool{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "DOGPILE_") && v != "" && !valid[k] {
			unknown[k] = true
		}
	}
	all := slices.Sorted(maps.Keys(valid))
	var ps []problem
	for _, k := range slices.Sorted(maps.Keys(unknown)) {
		// The region whose variables k starts like (the longest name, of users and users_v2),
		// if any: then k names no field of it; else no region.
		owner := ""
		for name := range byName {
			if strings.HasPrefix(k, EnvName(name, "")) && len(name) > len(owner) {
				owner = name
			}
		}
		var warning, msg, known string
		candidates, attrs := all, []any{"variable", k}
		if owner != "" {
			candidates = byRegion[owner]
			warning = "config: ignored an environment variable that names no field of its region"
			msg = "names no field of region " + owner
			attrs = append(attrs, "region", owner)
		} else {
			regions := strings.Join(names(byName), ", ")
			warning = "config: ignored an environment variable that names no region of this program"
			msg, known = "names no region of this program", "; its regions: "+regions
			attrs = append(attrs, "regions", regions)
		}
		if s := nearest(k, candidates); s != "" {
			attrs = append(attrs, "did_you_mean", s)
		}
		ps = append(ps, problem{
			warning: warning,
			attrs:   attrs,
			err:     errors.New("config: environment variable " + k + " " + msg + didYouMean(k, candidates) + known),
		})
	}
	return ps
}
