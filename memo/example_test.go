package memo_test

import (
	"context"
	"fmt"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

type User struct {
	ID   int64
	Name string
}

// queries counts the calls that reach the "database".
var queries int

func loadUserFromDB(_ context.Context, id int64) (*User, error) {
	queries++
	return &User{ID: id, Name: fmt.Sprint("user ", id)}, nil
}

func ExampleFunc() {
	cache := region.New("default", region.WithExpiration(10*time.Minute))
	if err := cache.Configure(memory.New()); err != nil {
		panic(err)
	}
	defer cache.Close()

	userByID := memo.Func(cache, loadUserFromDB)
	ctx := context.Background()

	u, _ := userByID.Call(ctx, 42) // runs loadUserFromDB
	u, _ = userByID.Call(ctx, 42)  // from the cache
	fmt.Println(u.Name, "- queries:", queries)

	_ = userByID.Invalidate(ctx, 42) // after the user changed
	u, _ = userByID.Call(ctx, 42)
	fmt.Println(u.Name, "- queries:", queries)

	key, _ := userByID.Key(42)
	fmt.Println(key)
	// Output:
	// user 42 - queries: 1
	// user 42 - queries: 2
	// github.com/dogpile-go/dogpile/memo_test.loadUserFromDB|i64:42
}

func ExampleFunc2() {
	cache := region.New("search")
	if err := cache.Configure(memory.New()); err != nil {
		panic(err)
	}
	defer cache.Close()

	search := memo.Func2(cache, func(ctx context.Context, query string, page int) ([]string, error) {
		return []string{fmt.Sprintf("%s #%d", query, page)}, nil
	}, memo.WithNamespace("search"), // a function literal needs a stable namespace
		region.WithShouldCache(func(results []string) bool { return len(results) > 0 }))

	res, _ := search.Call(context.Background(), "gophers", 2)
	key, _ := search.Key("gophers", 2)
	fmt.Println(res, key)
	// Output: [gophers #2] search|s7:gophers,i:2
}

func ExampleHandle_Cached() {
	cache := region.New("peek")
	if err := cache.Configure(memory.New()); err != nil {
		panic(err)
	}
	defer cache.Close()
	square := memo.Func(cache, func(_ context.Context, n int) (int, error) { return n * n, nil },
		memo.WithNamespace("square"))

	ctx := context.Background()
	_, ok, _ := square.Cached(ctx, 9) // never calls the function
	fmt.Println("before:", ok)
	_, _ = square.Call(ctx, 9)
	v, ok, _ := square.Cached(ctx, 9)
	fmt.Println("after:", v, ok)
	// Output:
	// before: false
	// after: 81 true
}

func ExampleMulti() {
	cache := region.New("default", region.WithExpiration(10*time.Minute))
	if err := cache.Configure(memory.New()); err != nil {
		panic(err)
	}
	defer cache.Close()

	// usersByIDs stands for one query: SELECT ... WHERE id = ANY($1).
	var asked [][]int64
	usersByIDs := func(_ context.Context, ids []int64) (map[int64]*User, error) {
		asked = append(asked, ids)
		m := make(map[int64]*User, len(ids))
		for _, id := range ids {
			if id != 404 { // no such user: left out, and not cached
				m[id] = &User{ID: id, Name: fmt.Sprint("user ", id)}
			}
		}
		return m, nil
	}
	users := memo.Multi(cache, usersByIDs, memo.WithNamespace("users"))
	ctx := context.Background()

	_, _ = users.Call(ctx, []int64{1, 2})          // one query for 1 and 2
	m, _ := users.Call(ctx, []int64{1, 2, 3, 404}) // one query, for 3 and 404 only
	fmt.Println(len(m), m[3].Name, asked)

	// Output:
	// 3 user 3 [[1 2] [3 404]]
}

// A handle's With gives one call options of its own, here a request that asks not to be served
// from the cache (Cache-Control: no-cache): the function runs, and its result is stored for the
// calls that follow.
func ExampleHandle_With() {
	cache := region.New("with", region.WithExpiration(10*time.Minute))
	if err := cache.Configure(memory.New()); err != nil {
		panic(err)
	}
	defer cache.Close()

	loads := 0
	price := memo.Func(cache, func(_ context.Context, sku string) (int, error) {
		loads++
		return 100 + loads, nil
	}, memo.WithNamespace("price"))
	ctx := context.Background()

	p, _ := price.Call(ctx, "tea")
	fmt.Println(p, "loads:", loads)
	p, _ = price.With(region.WithBypass()).Call(ctx, "tea")
	fmt.Println(p, "loads:", loads)
	p, _ = price.Call(ctx, "tea")
	fmt.Println(p, "loads:", loads)

	short := price.With(region.WithExpiration(time.Second)) // keep it for calls that share it
	p, _ = short.Call(ctx, "tea")
	fmt.Println(p, "loads:", loads)
	// Output:
	// 101 loads: 1
	// 102 loads: 2
	// 102 loads: 2
	// 102 loads: 2
}
