package main

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/dogpile-go/dogpile/keys"
)

// keyFlagsUsage is how the key flags read in every command's help.
const keyFlagsUsage = `A key is given as the application's code wrote it: -fn names the memo handle's namespace
and the arguments are the function's (after ctx), encoded as memo encodes them (keys.Default:
"-fn example.com/app/users.Load 42" is the key "example.com/app/users.Load|i:42"). Each
argument's Go type is guessed, a decimal integer as int and anything else as string, unless
-types gives them. -raw takes the region's key as it is, already encoded (a View's key, or
"users.Load|i:42"). The region's key mangler (keys.SHA1...) is code, not configuration:
-mangle applies it.`

// parseMangler builds the mangler of a -mangle value (see keyFlags).
func parseMangler(spec string) (keys.Mangler, error) {
	if spec == "" || spec == "none" {
		return nil, nil
	}
	var steps []keys.Mangler
	for _, step := range strings.Split(spec, ",") {
		name, arg, hasArg := strings.Cut(step, "=")
		switch {
		case name == "sha1" && !hasArg:
			steps = append(steps, keys.SHA1)
		case name == "sha1-over" && hasArg:
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 {
				return nil, usagef("-mangle %q: sha1-over=%q: want a length in bytes", spec, arg)
			}
			steps = append(steps, keys.LengthConditional(n, keys.SHA1))
		case name == "prefix" && hasArg:
			steps = append(steps, keys.Prefix(arg))
		default:
			return nil, usagef("-mangle %q: unknown step %q (want sha1, sha1-over=N or prefix=STR, separated by commas)", spec, step)
		}
	}
	return keys.Chain(steps...), nil
}

// callKey returns the region key of one call: with -fn, args are the function's arguments; with
// -raw, args is the key. how says how the arguments were read ("42 as int"), for messages.
func callKey(o *options, args []string) (key, how string, err error) {
	switch {
	case o.fn != "" && o.rawKey:
		return "", "", usagef("-fn and -raw: give one (-fn builds the key from arguments, -raw takes it as it is)")
	case o.rawKey:
		if len(args) != 1 {
			return "", "", usagef("-raw takes one key, got %d argument(s)", len(args))
		}
		if args[0] == "" {
			return "", "", usagef("empty key")
		}
		return args[0], "", nil
	case o.fn != "":
		return fnKey(o, args)
	}
	return "", "", usagef("how is the key written? -fn <namespace> <arguments...> builds it as memo does; -raw <key> takes it as stored")
}

// callKeys returns the region keys of invalidate's arguments: each one is a key (-raw), or the
// argument of one call of a function of one argument (-fn).
func callKeys(o *options, args []string) ([]string, error) {
	out := make([]string, len(args))
	for i, a := range args {
		k, _, err := callKey(o, []string{a})
		if err != nil {
			return nil, err
		}
		out[i] = k
	}
	return out, nil
}

// fnKey encodes args as memo's default key generator does for a function of namespace o.fn whose
// arguments have the types of -types (guessed where it gives none).
func fnKey(o *options, args []string) (key, how string, err error) {
	var types []string
	if o.types != "" {
		types = strings.Split(o.types, ",")
		if len(types) != len(args) {
			return "", "", usagef("-types %q names %d type(s) for %d argument(s)", o.types, len(types), len(args))
		}
	}
	vals := make([]any, len(args))
	var read []string
	for i, a := range args {
		typ := ""
		if types != nil {
			typ = strings.TrimSpace(types[i])
		} else if _, err := strconv.ParseInt(a, 10, 0); err == nil {
			typ = "int"
		} else {
			typ = "string"
		}
		v, err := parseArg(typ, a)
		if err != nil {
			return "", "", usagef("argument %d (%q): %v", i+1, a, err)
		}
		vals[i] = v
		read = append(read, fmt.Sprintf("%q as %s", a, typ))
	}
	key, err = keys.Default(o.fn, vals...)
	if err != nil {
		return "", "", usagef("-fn %q: %v", o.fn, err)
	}
	how = "the arguments read as " + strings.Join(read, ", ")
	if types == nil {
		how += " (guessed: -types gives them)"
	}
	return key, how, nil
}

// argTypes are the types -types names, for its usage.
const argTypes = "string, bytes, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, time (RFC 3339)"

// parseArg reads s as a value of the Go type typ, for keys.Default to encode.
func parseArg(typ, s string) (any, error) {
	intOf := func(size int) (int64, error) { return strconv.ParseInt(s, 10, size) }
	uintOf := func(size int) (uint64, error) { return strconv.ParseUint(s, 10, size) }
	var v any
	var err error
	switch typ {
	case "string":
		v = s
	case "bytes", "[]byte":
		v = []byte(s)
	case "bool":
		v, err = strconv.ParseBool(s)
	case "int":
		var n int64
		n, err = intOf(bits.UintSize)
		v = int(n)
	case "int8":
		var n int64
		n, err = intOf(8)
		v = int8(n)
	case "int16":
		var n int64
		n, err = intOf(16)
		v = int16(n)
	case "int32":
		var n int64
		n, err = intOf(32)
		v = int32(n)
	case "int64":
		v, err = intOf(64)
	case "uint":
		var n uint64
		n, err = uintOf(bits.UintSize)
		v = uint(n)
	case "uint8":
		var n uint64
		n, err = uintOf(8)
		v = uint8(n)
	case "uint16":
		var n uint64
		n, err = uintOf(16)
		v = uint16(n)
	case "uint32":
		var n uint64
		n, err = uintOf(32)
		v = uint32(n)
	case "uint64":
		v, err = uintOf(64)
	case "float32":
		var f float64
		f, err = strconv.ParseFloat(s, 32)
		v = float32(f)
	case "float64":
		v, err = strconv.ParseFloat(s, 64)
	case "time":
		v, err = time.Parse(time.RFC3339Nano, s)
	default:
		return nil, fmt.Errorf("unknown type %q (known: %s)", typ, argTypes)
	}
	if err != nil {
		return nil, fmt.Errorf("not a %s", typ)
	}
	return v, nil
}
