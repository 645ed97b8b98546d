package syncguard

// A Backend decorator (such as the one [WithTelemetry] returns) exposes the
// backend it wraps through an Unwrap method:
//
//	Unwrap() Backend
//
// Decorators may implement the optional interfaces ([ReleaseWatcher],
// [RawLookup]) unconditionally and forward them, so a type assertion on a
// decorated backend does not tell whether the feature is really there. The
// helpers below answer that question by walking the Unwrap chain.

// backendUnwrapper is implemented by Backend decorators.
type backendUnwrapper interface {
	Unwrap() Backend
}

// maxUnwrapDepth bounds the walk down an Unwrap chain (and so breaks
// accidental cycles).
const maxUnwrapDepth = 32

// AsReleaseWatcher returns the [ReleaseWatcher] of b, looking through
// decorators (values with an Unwrap() Backend method).
//
// The chain supports release watching iff its base (the innermost backend,
// one without Unwrap or whose Unwrap returns nil) implements ReleaseWatcher.
// If it does, the result is the outermost value of the chain that
// implements ReleaseWatcher — a decorator that forwards it, or the base
// itself — so that decorators stay in the call path. A decorator that
// implements the interface over a base that does not is never returned.
func AsReleaseWatcher(b Backend) (ReleaseWatcher, bool) {
	return asOptional[ReleaseWatcher](b)
}

// AsHandoffWatcher returns the [HandoffWatcher] of b, looking through
// decorators with the same rules as [AsReleaseWatcher].
func AsHandoffWatcher(b Backend) (HandoffWatcher, bool) {
	return asOptional[HandoffWatcher](b)
}

// AsRawLookup returns the [RawLookup] of b, looking through decorators with
// the same rules as [AsReleaseWatcher].
func AsRawLookup(b Backend) (RawLookup, bool) {
	return asOptional[RawLookup](b)
}

func asOptional[T any](b Backend) (T, bool) {
	var (
		zero, outer T
		haveOuter   bool
	)
	for range maxUnwrapDepth {
		if b == nil {
			return zero, false
		}
		v, impl := b.(T)
		var next Backend
		if u, ok := b.(backendUnwrapper); ok {
			next = u.Unwrap()
		}
		if next == nil { // b is the base
			switch {
			case !impl:
				return zero, false
			case haveOuter:
				return outer, true
			default:
				return v, true
			}
		}
		if impl && !haveOuter {
			outer, haveOuter = v, true
		}
		b = next
	}
	return zero, false
}
