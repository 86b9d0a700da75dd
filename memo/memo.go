package memo

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"unsafe"

	"github.com/dogpile-go/dogpile/internal/extopt"
	"github.com/dogpile-go/dogpile/keys"
	"github.com/dogpile-go/dogpile/region"
)

// config is a handle's settings, from the options given to its constructor.
type config struct {
	namespace    string
	namespaceSet bool
	gen          keys.Generator
	view         []region.Option // the policy settings, for the handle's view
}

// namespaceOption and generatorOption are memo's own settings, carried in region.Options.
type (
	namespaceOption string
	generatorOption struct{ g keys.Generator }
)

// WithNamespace sets the namespace that starts every key of the function, in place of its
// qualified name. Set one when the default is not stable or not unique: for closures and
// function literals (whose names, like "main.main.func1", change as code moves), for methods of
// different instances that must not share entries, and for keys that several binaries must agree
// on (a shared Redis), and for instantiations of generic functions, which all share one name. The
// namespace also names the function's statistics in the region's (Region.ViewStats,
// Region.PublishExpvar), unless region.WithName gives them another name. It must not be empty or
// contain keys.Sep. A setting of a handle's constructor only: a region, a view or a call given it
// returns (or panics with) an error that wraps region.ErrInvalidOption.
func WithNamespace(ns string) region.Option {
	return extopt.New("memo.WithNamespace", namespaceOption(ns)).(region.Option)
}

// WithKeyGenerator replaces the default key encoding with g, called with the namespace and the
// arguments. The default (the encoding of keys.Default, built without boxing) never makes two
// different argument lists collide; a custom generator must keep that property itself. Passing
// the arguments to g as ...any allocates on every call. A setting of a handle's constructor
// only, as WithNamespace.
func WithKeyGenerator(g keys.Generator) region.Option {
	return extopt.New("memo.WithKeyGenerator", generatorOption{g}).(region.Option)
}

// core is what every handle does, over its arguments packed in one value of type P. Each handle
// builds keys itself (a direct call keeps its key buffer on the stack on the hit path) and hands
// core the rest.
type core[P, V any] struct {
	view   *region.View[V]
	fn     func(context.Context, P) (V, error)
	ns     string
	prefix string         // ns + keys.Sep: the start of every default key
	gen    keys.Generator // nil: the default encoding
	keyOf  func(P) (string, error)
	opts   []region.Option // a call-scoped handle's (With), for Call, Refresh and Cached
}

// newCore builds the core of a handle configured by c, which calls call.
func newCore[P, V any](r *region.Region, c config, call func(context.Context, P) (V, error)) *core[P, V] {
	return &core[P, V]{
		view:   region.NewView[V](r, c.view...),
		fn:     call,
		ns:     c.namespace,
		prefix: c.namespace + string(keys.Sep),
		gen:    c.gen,
	}
}

// newConfig applies opts for a handle of fn and validates the result; it panics on programmer
// errors (see Func). The handle's constructor checks its argument types with encoder.
func newConfig(r *region.Region, fn any, opts []region.Option) config {
	if r == nil {
		panic("memo: nil region")
	}
	if fn == nil || reflect.ValueOf(fn).IsNil() {
		panic("memo: nil function")
	}
	var c config
	for _, o := range opts {
		switch v, _ := extopt.Value(o); v := v.(type) {
		case namespaceOption:
			c.namespace, c.namespaceSet = string(v), true
		case generatorOption:
			c.gen = v.g
		default:
			c.view = append(c.view, o)
		}
	}
	if !c.namespaceSet {
		c.namespace = runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
		if strings.Contains(c.namespace, "[...]") {
			// Every instantiation of a generic function has this one name: fetch[User] and
			// fetch[Order] would share their keys.
			panic(fmt.Sprintf("memo: %s is generic: its instantiations share one name; set a namespace with memo.WithNamespace", c.namespace))
		}
	}
	if err := keys.ValidNamespace(c.namespace); err != nil {
		panic(fmt.Sprintf("memo: %v (set one with memo.WithNamespace)", err))
	}
	// The handle's statistics go by its namespace, unless a region.WithName of opts says otherwise.
	c.view = append([]region.Option{region.WithName(c.namespace)}, c.view...)
	return c
}

// encoder returns the encoder of a handle's arguments of type A, or nil when the handle,
// configured by c, has a custom key generator. It panics if keys cannot encode A (see Func).
func encoder[A any](c config) *keys.Encoder[A] {
	if c.gen != nil {
		return nil
	}
	e, err := keys.EncoderFor[A]()
	if err != nil {
		panic(fmt.Sprintf("memo: %s: %v (use memo.WithKeyGenerator)", c.namespace, err))
	}
	return e
}

func (c *core[P, V]) keyErr(err error) error {
	return fmt.Errorf("memo: %s: key: %w", c.ns, err)
}

func (c *core[P, V]) generated(args ...any) (string, error) {
	k, err := c.gen(c.ns, args...)
	if err != nil {
		return "", c.keyErr(err)
	}
	return k, nil
}

func (c *core[P, V]) call(ctx context.Context, key string, p P) (V, error) {
	return region.GetOrCreateWith(ctx, c.view, key, c.fn, p, c.opts...)
}

func (c *core[P, V]) invalidate(ctx context.Context, p P) error {
	k, err := c.keyOf(p)
	if err != nil {
		return err
	}
	return c.view.Delete(ctx, k)
}

func (c *core[P, V]) refresh(ctx context.Context, p P) (V, error) {
	k, err := c.keyOf(p)
	if err != nil {
		var zero V
		return zero, err
	}
	return c.view.Refresh(ctx, k, func(ctx context.Context) (V, error) { return c.fn(ctx, p) }, c.opts...)
}

func (c *core[P, V]) set(ctx context.Context, p P, v V) error {
	k, err := c.keyOf(p)
	if err != nil {
		return err
	}
	return c.view.Set(ctx, k, v)
}

func (c *core[P, V]) cached(ctx context.Context, p P) (V, bool, error) {
	k, err := c.keyOf(p)
	if err != nil {
		var zero V
		return zero, false, err
	}
	return c.view.Get(ctx, k, c.opts...)
}

// with returns a copy of c for calls with opts after c's own: the core of a call-scoped handle.
func (c *core[P, V]) with(opts []region.Option) *core[P, V] {
	d := *c
	d.opts = with(c.opts, opts)
	return &d
}

// with returns opts after base, in a new slice.
func with(base, opts []region.Option) []region.Option {
	return append(base[:len(base):len(base)], opts...)
}

// keyBuf is the stack buffer default keys are built in; longer keys grow onto the heap.
type keyBuf [128]byte

// lent is the string of b, without a copy: the key of a call, built in a keyBuf on the caller's
// stack. The region does not keep the keys its hit path is given (it copies those it keeps, on
// the slow path), which the compiler checks: were one kept, escape analysis would move the
// buffer to the heap. A key that leaves the call (Key) is copied with own.
func lent(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// own returns a copy of the key a handle's lend built, for use past the call.
func own(k string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return strings.Clone(k), nil
}
