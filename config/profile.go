package config

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// Profile is a section of a document for one environment, selected by Options.Profile or by the
// environment variable DOGPILE_PROFILE, so that one file serves staging and production. Its
// regions are merged over the document's, field by field: each field a profile's region sets
// replaces the document's, and the others stay. A profile that sets a region's backend sets its
// arguments too (the document's were for another backend, as with DOGPILE_<REGION>_BACKEND);
// one that sets arguments alone adds them to the document's, replacing those of the same name. A
// region that only a profile has is configured from the profile alone. The environment's
// variables override the result.
//
//	regions:
//	  users: {backend: "redis://cache:6379/0", arguments: {prefix: "app:"}, expiration: 10m}
//	profiles:
//	  staging:
//	    regions:
//	      users: {expiration: 1m}       # redis://cache:6379/0, prefix app:, expiration 1m
//	  dev:
//	    regions:
//	      users: {backend: "memory://"} # memory://, no arguments, expiration 10m
type Profile struct {
	// Regions are merged over the document's regions of the same names.
	Regions map[string]Region `json:"regions"`
}

// source is where in the document a region's fields were set: the region's entry under regions,
// or a profile's entry that replaced them.
type source struct {
	entry  string            // the region's entry when only a profile has it; "": regions.<name>
	fields map[string]string // the entry of each field a profile set ("expiration", "arguments.prefix")
}

// entryPath returns the path of the entry of the region named name.
func (s source) entryPath(name string) string {
	if s.entry != "" {
		return s.entry
	}
	return "regions." + name
}

// path returns the document path of field of the region named name, in the entry that set it:
// "regions.users.expiration", or "profiles.staging.regions.users.expiration".
func (s source) path(name, field string) string {
	e, ok := s.fields[field]
	if !ok {
		head, _, _ := strings.Cut(field, ".")
		e, ok = s.fields[head]
	}
	if !ok {
		e = s.entryPath(name)
	}
	return e + "." + field
}

// withProfile returns the document's regions with the profile named name merged over them (none
// for ""); from says who named it, for the error of a profile the document does not have. It
// changes nothing of d's.
func (d *Document) withProfile(name, from string) (map[string]Region, error) {
	regions := maps.Clone(d.Regions)
	if name == "" {
		return regions, nil
	}
	p, ok := d.Profiles[name]
	if !ok {
		known := slices.Sorted(maps.Keys(d.Profiles))
		where := "the document"
		if d.file != "" {
			where = d.file
		}
		if len(known) == 0 {
			return nil, fmt.Errorf("config: profile %q (from %s): %s has no profiles", name, from, where)
		}
		return nil, fmt.Errorf("config: profile %q (from %s) is not in %s%s; its profiles: %s",
			name, from, where, didYouMean(name, known), strings.Join(known, ", "))
	}
	if regions == nil {
		regions = make(map[string]Region, len(p.Regions))
	}
	for rname, over := range p.Regions {
		entry := "profiles." + name + ".regions." + rname
		base, ok := regions[rname]
		if !ok {
			over.src = source{entry: entry}
			regions[rname] = over
			continue
		}
		regions[rname] = merge(base, over, entry)
	}
	return regions, nil
}

// merge returns base with the fields that over sets replacing its own, as Profile describes;
// entry is over's path in the document. Neither base's maps nor over's are changed.
func merge(base, over Region, entry string) Region {
	out := base
	out.src.fields = maps.Clone(base.src.fields)
	if out.src.fields == nil {
		out.src.fields = map[string]string{}
	}
	ov, bv := reflect.ValueOf(&over).Elem(), reflect.ValueOf(&out).Elem()
	for _, f := range regionFields {
		if v := ov.Field(f.index); f.name != "arguments" && !v.IsZero() {
			bv.Field(f.index).Set(v)
			out.src.fields[f.name] = entry
		}
	}
	switch {
	case over.Backend != "":
		out.Arguments = maps.Clone(over.Arguments)
		maps.DeleteFunc(out.src.fields, func(k, _ string) bool { return strings.HasPrefix(k, "arguments.") })
		out.src.fields["arguments"] = entry
	case over.Arguments != nil:
		args := maps.Clone(base.Arguments)
		if args == nil {
			args = make(map[string]any, len(over.Arguments))
		}
		for k, v := range over.Arguments {
			args[k] = v
			out.src.fields["arguments."+k] = entry
		}
		out.Arguments = args
	}
	return out
}
