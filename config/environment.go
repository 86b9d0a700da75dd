package config

import "strings"

// EnvName is the environment variable that overrides field of the region named name.
func EnvName(name, field string) string {
	up := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z':
				return r - 'a' + 'A'
			case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
				return r
			}
			return '_'
		}, s)
	}
	return "DOGPILE_" + up(name) + "_" + up(field)
}

// envFields are the fields the environment may set for a region: its backend and each region
// parameter.
func envFields() []string {
	return append([]string{"backend"}, regionParams.Names...)
}

// overlay applies the environment to c: the backend (with its URL's parameters, and without
// the document's arguments), and each field, kept apart in env so that open can order them.
func overlay(c Region, name string, getenv func(string) string) Region {
	if v := getenv(EnvName(name, "backend")); v != "" {
		// Another backend: the document's arguments were for its own, and the variable's URL
		// carries its parameters itself.
		c.Backend, c.Arguments, c.envBackend = v, nil, true
	}
	c.env = map[string]string{}
	for _, field := range regionParams.Names {
		if v := getenv(EnvName(name, field)); v != "" {
			c.env[field] = v
		}
	}
	return c
}

// fromEnv returns err about field of the region named name, set by its environment variable:
// "config: regions.users.expiration (from DOGPILE_USERS_EXPIRATION): ...".
func fromEnv(name, field string, err error) error {
	return wrapAt("", 0, "regions."+name+"."+field+" (from "+EnvName(name, field)+")", err)
}
