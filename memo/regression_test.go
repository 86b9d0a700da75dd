package memo_test

import (
	"context"
	"testing"

	"github.com/dogpile-go/dogpile/memo"
)

// fetch is generic in its result only, like a typed "load row as T" helper.
func fetch[T any](_ context.Context, id int64) (T, error) {
	var zero T
	return zero, nil
}

// Two instantiations of one generic function used to get the same default namespace
// (runtime.FuncForPC names every instantiation "pkg.fetch[...]"), so when the type parameter is
// not in the arguments they shared every key. Now the default is refused for generic functions.
func TestGenericFunctionsNeedANamespace(t *testing.T) {
	r := newRegion(t)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("memo.Func of a generic function without a namespace did not panic")
			}
		}()
		memo.Func(r, fetch[string])
	}()
	hs := memo.Func(r, fetch[string], memo.WithNamespace("fetch-string"))
	hi := memo.Func(r, fetch[int], memo.WithNamespace("fetch-int"))
	ks, _ := hs.Key(1)
	ki, _ := hi.Key(1)
	if ks == ki {
		t.Errorf("fetch[string] and fetch[int] share the key %q", ks)
	}
}
