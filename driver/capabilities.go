package driver

// Capabilities is implemented by every driver's capability type. The type,
// not a runtime flag, carries what the driver guarantees: it embeds one
// marker per guarantee ([WithFencing], [WithServerTime], [WithFairHandoff],
// [WithCrossProcess]), and features that need a guarantee are constrained
// on the matching interface ([Fenced], [ServerTime], [FairHandoff],
// [CrossProcess]), so using them with a driver that lacks it does not
// compile.
//
// A driver package declares, for example:
//
//	type Capabilities struct {
//		driver.WithFencing
//		driver.WithServerTime
//		driver.WithFairHandoff
//		driver.WithCrossProcess
//	}
//
//	func (Capabilities) Name() string { return "redis" }
type Capabilities interface {
	// Name is the backend's name, such as "redis".
	Name() string
}

// Fenced is satisfied by capability types that embed [WithFencing]: every
// acquisition returns a fencing token strictly greater than all earlier
// ones of the same key, and the driver implements [RecordStore].
// syncguard.FenceOf, FencedWriter and OncePerKey require it.
type Fenced interface {
	Capabilities
	fencing()
}

// ServerTime is satisfied by capability types that embed [WithServerTime]:
// expiry is judged by one clock shared by all clients (the server's, or
// the one process's for an in-process driver), so client clock skew cannot
// shorten or lengthen a lock.
type ServerTime interface {
	Capabilities
	serverTime()
}

// FairHandoff is satisfied by capability types that embed
// [WithFairHandoff]: the driver implements [HandoffWatcher], so waiters of
// a key are served first come, first served and a release wakes only the
// next one.
type FairHandoff interface {
	Capabilities
	fairHandoff()
}

// CrossProcess is satisfied by capability types that embed
// [WithCrossProcess]: lock state lives in a server that every process
// reaches, so a lock excludes other processes and machines, not only other
// goroutines of one process.
type CrossProcess interface {
	Capabilities
	crossProcess()
}

// WithFencing is embedded in a capability type to declare [Fenced].
type WithFencing struct{}

func (WithFencing) fencing() {}

// WithServerTime is embedded in a capability type to declare [ServerTime].
type WithServerTime struct{}

func (WithServerTime) serverTime() {}

// WithFairHandoff is embedded in a capability type to declare
// [FairHandoff].
type WithFairHandoff struct{}

func (WithFairHandoff) fairHandoff() {}

// WithCrossProcess is embedded in a capability type to declare
// [CrossProcess].
type WithCrossProcess struct{}

func (WithCrossProcess) crossProcess() {}

// Info is the runtime description of a capability type, for code that
// chooses a driver at run time (the conformance suite, a CLI).
type Info struct {
	Name         string
	Fencing      bool
	ServerTime   bool
	FairHandoff  bool
	CrossProcess bool
}

// Describe derives the runtime description of c from its type.
func Describe(c Capabilities) Info {
	_, fenced := c.(Fenced)
	_, server := c.(ServerTime)
	_, fair := c.(FairHandoff)
	_, cross := c.(CrossProcess)
	return Info{Name: c.Name(), Fencing: fenced, ServerTime: server, FairHandoff: fair, CrossProcess: cross}
}
