package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse reads a document in YAML or JSON. Unknown fields are errors that name them, the line they
// are on and the nearest known field. It reads the whole document into memory, with the line of
// every key, which errors of Configure name too.
func Parse(data []byte) (Document, error) {
	return parse("", data)
}

// ReadFile reads the document in the file at path, as Parse does; its errors, and those Configure
// returns for the document, name the file and the line.
func ReadFile(path string) (Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Document{}, fmt.Errorf("config: %w", err)
	}
	return parse(path, data)
}

// wrap returns err about path of the document, with where that path is in it: "config:
// cache.yaml:7: regions.users.expiration: ...".
func (d *Document) wrap(path string, err error) error {
	return wrapAt(d.file, d.line(path), path, err)
}

// line returns the line of path in the document; a path the document does not have (a field left
// out) is placed at the nearest entry that holds it. 0: unknown, as for a document built in code.
func (d *Document) line(path string) int {
	for p := path; ; {
		if line, ok := d.lines[p]; ok {
			return line
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			return 0
		}
		p = p[:i]
	}
}

// location is "file:line", "file", "line N", or "" when neither is known.
func location(file string, line int) string {
	switch {
	case file != "" && line > 0:
		return file + ":" + strconv.Itoa(line)
	case file != "":
		return file
	case line > 0:
		return "line " + strconv.Itoa(line)
	}
	return ""
}

// wrapAt returns err at line of file, about path: "config: cache.yaml:7: regions.users: ...".
// Each of the three may be unknown ("", 0, "") and is then left out.
func wrapAt(file string, line int, path string, err error) error {
	prefix := "config"
	if l := location(file, line); l != "" {
		prefix += ": " + l
	}
	if path != "" {
		prefix += ": " + path
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// errAt is wrapAt for a message.
func errAt(file string, line int, path, msg string) error {
	return wrapAt(file, line, path, errors.New(msg))
}

// yamlLine finds the line in the errors of the YAML parser: "yaml: line 3: did not find ...".
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseBudget bounds the key-value pairs that one document of size bytes may expand to through
// YAML aliases and merge keys, so that a few kilobytes of aliases of aliases cannot take minutes
// or gigabytes: a pair takes 4 bytes at least written out, and aliases may multiply that by 16.
func parseBudget(size int) int { return 10_000 + 4*size }

// parser reads one document from the YAML parser's nodes, noting the line of every key.
type parser struct {
	file   string
	lines  map[string]int      // line of each key, by path: "regions.users.expiration"
	busy   map[*yaml.Node]bool // mappings whose merge keys are being expanded
	budget int                 // key-value pairs left to visit
}

func parse(file string, data []byte) (Document, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		// A document that starts with "{" and is not YAML is meant as JSON: its error is said in
		// JSON's terms. (YAML's flow style, {regions: ...}, starts so too, and was read above.)
		trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
		isJSON := len(trimmed) > 0 && trimmed[0] == '{'
		if isJSON && !json.Valid(data) {
			err := json.Unmarshal(data, new(any))
			line := 0
			var se *json.SyntaxError
			if errors.As(err, &se) {
				line = 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
			}
			return Document{}, errAt(file, line, "", "invalid JSON: "+strings.TrimPrefix(err.Error(), "json: "))
		}
		what := "invalid YAML"
		if isJSON {
			what = "JSON that the YAML reader refuses" // valid JSON, but not YAML: an escape such as \/
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		return Document{}, errAt(file, line, "", what+": "+msg)
	}
	p := &parser{file: file, lines: map[string]int{}, busy: map[*yaml.Node]bool{}, budget: parseBudget(len(data))}
	d := Document{file: file, lines: p.lines}
	n := &root
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return d, nil
		}
		n = n.Content[0]
	}
	n = resolve(n)
	if n.Kind == 0 || isNull(n) {
		return d, nil // an empty document
	}
	if n.Kind != yaml.MappingNode {
		return Document{}, errAt(file, n.Line, "", "want a mapping with regions (and profiles)")
	}
	pairs, err := p.pairs(n, "")
	if err != nil {
		return Document{}, err
	}
	for _, kv := range pairs {
		switch key := kv.key.Value; key {
		case "regions":
			if d.Regions, err = p.regions(kv.value, "regions"); err != nil {
				return Document{}, err
			}
		case "profiles":
			if d.Profiles, err = p.profiles(kv.value, "profiles"); err != nil {
				return Document{}, err
			}
		default:
			return Document{}, p.unknown(kv.key, "", []string{"regions", "profiles"})
		}
	}
	return d, nil
}

// pair is a key of a mapping and its value.
type pair struct{ key, value *yaml.Node }

// pairs returns the keys and values of the mapping n (through an alias), with merge keys ("<<")
// expanded as YAML has them: the mapping's own keys win over merged ones, and of the merged, the
// first given wins. A null has none; anything else is an error. A key given twice is an error.
// The line of each key is noted under path.key.
func (p *parser) pairs(n *yaml.Node, path string) ([]pair, error) {
	n = resolve(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, errAt(p.file, n.Line, path, "want a mapping, not "+kindName(n))
	}
	if p.busy[n] {
		return nil, errAt(p.file, n.Line, path, "a merge key (<<) refers to the mapping it is in")
	}
	p.busy[n] = true
	defer delete(p.busy, n)

	var own, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if p.budget--; p.budget < 0 {
			return nil, errAt(p.file, n.Line, path, "the document expands to too much through aliases")
		}
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge") {
			sources := []*yaml.Node{v}
			if r := resolve(v); r.Kind == yaml.SequenceNode {
				sources = r.Content
			}
			for _, s := range sources {
				ps, err := p.pairs(s, path)
				if err != nil {
					return nil, err
				}
				merged = append(merged, ps...)
			}
			continue
		}
		if k = resolve(k); k.Kind != yaml.ScalarNode {
			return nil, errAt(p.file, k.Line, path, "want a name as the key, not "+kindName(k))
		}
		if prev := seen[k.Value]; prev != nil {
			return nil, errAt(p.file, k.Line, join(path, k.Value), fmt.Sprintf("given twice (also at line %d)", prev.Line))
		}
		seen[k.Value] = k
		own = append(own, pair{k, v})
	}
	for _, kv := range merged {
		if seen[kv.key.Value] == nil {
			seen[kv.key.Value] = kv.key
			own = append(own, kv)
		}
	}
	for _, kv := range own {
		p.lines[join(path, kv.key.Value)] = kv.key.Line
	}
	return own, nil
}

func (p *parser) regions(n *yaml.Node, path string) (map[string]Region, error) {
	pairs, err := p.pairs(n, path)
	if err != nil {
		return nil, err
	}
	rs := make(map[string]Region, len(pairs))
	for _, kv := range pairs {
		name := kv.key.Value
		if rs[name], err = p.region(kv.value, join(path, name)); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

func (p *parser) profiles(n *yaml.Node, path string) (map[string]Profile, error) {
	pairs, err := p.pairs(n, path)
	if err != nil {
		return nil, err
	}
	ps := make(map[string]Profile, len(pairs))
	for _, kv := range pairs {
		ppath := join(path, kv.key.Value)
		fields, err := p.pairs(kv.value, ppath)
		if err != nil {
			return nil, err
		}
		var prof Profile
		for _, f := range fields {
			if f.key.Value != "regions" {
				return nil, p.unknown(f.key, ppath, []string{"regions"})
			}
			if prof.Regions, err = p.regions(f.value, join(ppath, "regions")); err != nil {
				return nil, err
			}
		}
		ps[kv.key.Value] = prof
	}
	return ps, nil
}

// region reads one region's entry; a null entry is a region with no settings.
func (p *parser) region(n *yaml.Node, path string) (Region, error) {
	var c Region
	pairs, err := p.pairs(n, path)
	if err != nil {
		return c, err
	}
	rv := reflect.ValueOf(&c).Elem()
	for _, kv := range pairs {
		f, ok := regionField(kv.key.Value)
		if !ok {
			return c, p.unknown(kv.key, path, regionFieldNames())
		}
		fpath := join(path, f.name)
		v := resolve(kv.value)
		if isNull(v) {
			continue // as if left out
		}
		if f.name == "arguments" {
			args, err := p.arguments(v, fpath)
			if err != nil {
				return c, err
			}
			c.Arguments = args
			continue
		}
		if v.Kind != yaml.ScalarNode {
			return c, errAt(p.file, v.Line, fpath, "want a single value, not "+kindName(v))
		}
		field := rv.Field(f.index)
		switch field.Kind() {
		case reflect.String:
			field.SetString(v.Value) // checked as the setting it is when the region is configured
		case reflect.Pointer:
			// By its tag, not by what Decode takes: Decode would truncate 1.5 into an int.
			target := reflect.New(field.Type().Elem())
			want, tag := "a number", v.ShortTag()
			ok := tag == "!!int" || tag == "!!float"
			if target.Elem().Kind() == reflect.Int {
				want, ok = "a whole number", tag == "!!int"
			}
			if !ok || v.Decode(target.Interface()) != nil {
				return c, errAt(p.file, v.Line, fpath, fmt.Sprintf("want %s, not %q", want, v.Value))
			}
			field.Set(target)
		}
	}
	return c, nil
}

// arguments reads a region's backend arguments: strings, booleans and numbers, the numbers as
// float64 (as JSON's are, whichever format the document is in).
func (p *parser) arguments(n *yaml.Node, path string) (map[string]any, error) {
	pairs, err := p.pairs(n, path)
	if err != nil {
		return nil, err
	}
	args := make(map[string]any, len(pairs))
	for _, kv := range pairs {
		apath := join(path, kv.key.Value)
		v := resolve(kv.value)
		if v.Kind != yaml.ScalarNode || isNull(v) {
			return nil, errAt(p.file, v.Line, apath, "want a string, number or boolean, not "+kindName(v))
		}
		switch v.ShortTag() {
		case "!!bool":
			var b bool
			err = v.Decode(&b)
			args[kv.key.Value] = b
		case "!!int", "!!float":
			var f float64
			err = v.Decode(&f)
			args[kv.key.Value] = f
		default:
			args[kv.key.Value] = v.Value
		}
		if err != nil {
			return nil, errAt(p.file, v.Line, apath, fmt.Sprintf("%q: %v", v.Value, err))
		}
	}
	return args, nil
}

// unknown is the error for a key that is none of known: it names the key, its line and the
// nearest known one.
func (p *parser) unknown(key *yaml.Node, path string, known []string) error {
	hint := didYouMean(key.Value, known)
	if hint == "" {
		hint = " (fields: " + strings.Join(known, ", ") + ")"
	}
	return errAt(p.file, key.Line, path, fmt.Sprintf("unknown field %q%s", key.Value, hint))
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName names what a node is, for errors: "a list", "a mapping", "null", or "a value".
func kindName(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case isNull(n):
		return "null"
	}
	return "a value"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldInfo is a field of Region as documents name it.
type fieldInfo struct {
	name  string // its JSON name: "storage_ttl"
	index int
}

// regionFields are the fields of Region that documents set, from its JSON tags.
var regionFields = func() []fieldInfo {
	var fs []fieldInfo
	t := reflect.TypeFor[Region]()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "" && name != "-" {
			fs = append(fs, fieldInfo{name, i})
		}
	}
	return fs
}()

func regionField(name string) (fieldInfo, bool) {
	for _, f := range regionFields {
		if f.name == name {
			return f, true
		}
	}
	return fieldInfo{}, false
}

// regionFieldNames are the names of regionFields, sorted.
func regionFieldNames() []string {
	ns := make([]string, len(regionFields))
	for i, f := range regionFields {
		ns[i] = f.name
	}
	sort.Strings(ns)
	return ns
}
