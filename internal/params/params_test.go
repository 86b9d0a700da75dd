package params_test

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/dogpile-go/dogpile/internal/params"
)

func TestURLStringKeepsTheSlashes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"memory://", "memory://"},
		{"memory://?max_entries=5", "memory://?max_entries=5"},
		{"null://", "null://"},
		{"redis://cache:6379/0?prefix=app%3A", "redis://cache:6379/0?prefix=app%3A"},
		{"file:///var/cache/app", "file:///var/cache/app"},
		{"redis://user@cache", "redis://user@cache"},
	} {
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := params.URLString(u); got != tc.want {
			t.Errorf("URLString(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// table is a Table whose options are the "name=value" they were read from; "bad" is refused.
var table = params.Table[struct{}, string]{
	Names: []string{"a", "b", "c"},
	Param: func(name, value string) (string, error) {
		if value == "bad" {
			return "", errors.New("parameter " + name + ": bad")
		}
		return name + "=" + value, nil
	},
}

func TestFromQueryTakesTheParametersInNamesOrder(t *testing.T) {
	q := url.Values{"c": {"3"}, "other": {"x"}, "a": {"1"}}
	opts, err := table.FromQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a=1", "c=3"}; !slices.Equal(opts, want) {
		t.Errorf("options %q, want %q", opts, want)
	}
	if want := (url.Values{"other": {"x"}}); q.Encode() != want.Encode() {
		t.Errorf("left in the query: %v, want %v", q, want)
	}
}

func TestFromQueryErrorsNameTheParameter(t *testing.T) {
	for _, tc := range []struct {
		q    url.Values
		want string
	}{
		{url.Values{"b": {"1", "2"}}, "parameter b given 2 times"},
		{url.Values{"a": {"1"}, "c": {"bad"}}, "parameter c: bad"},
	} {
		if _, err := table.FromQuery(tc.q); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("FromQuery(%v): %v, want an error saying %q", tc.q, err, tc.want)
		}
	}
}
