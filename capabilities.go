package syncguard

// Capabilities is implemented by every driver's capability type. The type,
// not a runtime flag, carries what the driver guarantees: a capability type
// embeds [WithFencing] to declare fencing tokens and [WithServerTime] to
// declare a server-side time authority. Guard features that need such a
// guarantee are constrained on it, so using them with a driver that lacks
// it is a compile-time error.
//
// A driver package declares, for example:
//
//	type Capabilities struct {
//		syncguard.WithFencing
//		syncguard.WithServerTime
//	}
//
//	func (Capabilities) Name() string { return "redis" }
type Capabilities interface {
	// Name is the backend's name, such as "redis".
	Name() string
}

// FencedCapabilities is satisfied by capability types that embed
// [WithFencing]: every acquisition returns a fencing token strictly greater
// than all earlier ones of the same key.
type FencedCapabilities interface {
	Capabilities
	fencing()
}

// ServerTimeCapabilities is satisfied by capability types that embed
// [WithServerTime]: expiry is judged by one clock shared by all clients
// (the server's), so client clock skew cannot shorten or lengthen a lock.
type ServerTimeCapabilities interface {
	Capabilities
	serverTime()
}

// WithFencing is embedded in a capability type to declare fencing support.
type WithFencing struct{}

func (WithFencing) fencing() {}

// WithServerTime is embedded in a capability type to declare that the
// driver's time authority is the server (or, for the in-process driver, the
// one process that holds all state).
type WithServerTime struct{}

func (WithServerTime) serverTime() {}

// TimeAuthority names whose clock judges expiry.
type TimeAuthority string

// Time authorities.
const (
	// TimeAuthorityServer: the backend's own clock (Redis TIME, PostgreSQL
	// clock_timestamp(), the in-process driver's clock).
	TimeAuthorityServer TimeAuthority = "server"
	// TimeAuthorityClient: each client's wall clock (Firestore). Clients
	// must keep their clocks synchronised (NTP).
	TimeAuthorityClient TimeAuthority = "client"
)

// CapabilityInfo is the runtime description of a capability type.
type CapabilityInfo struct {
	Name            string
	SupportsFencing bool
	TimeAuthority   TimeAuthority
}

// Describe derives the runtime description of c from its type.
func Describe(c Capabilities) CapabilityInfo {
	info := CapabilityInfo{Name: c.Name(), TimeAuthority: TimeAuthorityClient}
	if _, ok := c.(FencedCapabilities); ok {
		info.SupportsFencing = true
	}
	if _, ok := c.(ServerTimeCapabilities); ok {
		info.TimeAuthority = TimeAuthorityServer
	}
	return info
}
