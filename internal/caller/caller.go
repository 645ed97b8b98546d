// Package caller finds the code that called into SyncGuard, for the log
// adapters (syncguard.NewSlogObserver, zapobserver) that report a caller:
// an event is emitted several frames deep inside the library — how many
// depends on the path (Guard.Do, Acquire, a lease's heartbeat, a
// middleware) — so no fixed skip count can point at the user's line.
package caller

import (
	"runtime"
	"strings"
)

// module is the import path prefix of the library's packages.
const module = "github.com/syncguard/syncguard"

// maxDepth bounds the stack walk.
const maxDepth = 64

// Frame returns the innermost frame of the calling goroutine outside the
// SyncGuard module — the user's call into the library — and the program
// counter (as runtime.Callers gives it) of the physical frame that contains
// it, for slog.NewRecord. Packages of the module whose name ends in "_test"
// (tests and examples) count as users. A goroutine the library started
// itself (a lease's heartbeat) has no such frame: Frame then returns its
// outermost frame inside the module, the library function that runs the
// goroutine. ok is false only if the stack could not be read.
func Frame() (f runtime.Frame, pc uintptr, ok bool) {
	var pcs [maxDepth]uintptr
	n := runtime.Callers(2, pcs[:]) // skip runtime.Callers and Frame
	for _, p := range pcs[:n] {
		// One physical frame may hold several inlined ones.
		frames := runtime.CallersFrames([]uintptr{p})
		for {
			fr, more := frames.Next()
			switch {
			case fr.Function == "":
			case inModule(fr.Function):
				f, pc, ok = fr, p, true
			case !strings.HasPrefix(fr.Function, "runtime."):
				return fr, p, true
			}
			if !more {
				break
			}
		}
	}
	return f, pc, ok
}

// inModule reports whether the function named fn (as runtime.Frame gives
// it, e.g. "github.com/syncguard/syncguard.(*Guard[...]).Do") belongs to a
// non-test package of the module.
func inModule(fn string) bool {
	if i := strings.IndexByte(fn, '['); i >= 0 {
		fn = fn[:i] // type arguments may contain paths
	}
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot < 0 {
		return false
	}
	pkg := fn[:slash+1+dot]
	if pkg != module && !strings.HasPrefix(pkg, module+"/") {
		return false
	}
	return !strings.HasSuffix(pkg, "_test")
}
