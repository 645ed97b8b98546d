package syncguard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// ErrStaleFence reports a write refused because its fence is older than one
// the store already accepted for the same resource: a newer lock holder has
// written, so the writer's lease has expired (or was lost) behind its back.
// The write changed nothing. Do not retry it with the same lease.
var ErrStaleFence = errors.New("syncguard: stale fence: a newer lock holder has written")

// staleFence returns an error matching ErrStaleFence that names both fences.
func staleFence(name string, fence, current Fence) error {
	return fmt.Errorf("%w (resource %s: fence %s, stored %s)", ErrStaleFence, driver.HashKey(name), fence, current)
}

// FencedStore is where a [FencedWriter] writes. An implementation must
// compare and write in one atomic step: store value for resource only if
// no fence was accepted for it yet or the stored fence is ≤ fence (equal:
// the same holder writing again), and otherwise change nothing and return
// an error matching [ErrStaleFence].
//
// The default store keeps values as fenced records of the Guard's driver.
// The pgfence package implements it over a PostgreSQL table and shows how
// to fence writes to tables of your own (a "WHERE fence <= $n" condition in
// the same statement).
type FencedStore interface {
	// WriteFenced stores value for resource under fence, or returns an
	// error matching ErrStaleFence.
	WriteFenced(ctx context.Context, resource string, fence Fence, value []byte) error
	// ReadFenced returns the value and fence stored for resource, or nil.
	ReadFenced(ctx context.Context, resource string) (*driver.Record, error)
}

// FencedWriter makes writes that a stale lock holder cannot make. Each
// write carries the fencing token of the writer's lease; the store refuses
// a write whose fence is older than one it already accepted for that
// resource and says so with an error matching [ErrStaleFence].
//
// This closes the gap a TTL leaves open: holder A pauses (GC, swap, a
// stopped VM) past its TTL, B acquires the lock and writes, A wakes up and
// writes — and A's write is refused because B's fence is newer, so B's
// value survives.
//
// All writes to one resource must be made under leases of one lock key:
// fences are ordered per key, so fences of different keys cannot be
// compared. One key may guard several resources.
//
// FencedWriter only compiles for drivers whose capability type declares
// fencing. It is safe for concurrent use.
type FencedWriter[C Fenced] struct {
	store FencedStore
}

type fencedConfig struct {
	store FencedStore
}

// WithFencedStore makes a [FencedWriter] write to s instead of the Guard's
// driver, for example a pgfence.Store over a PostgreSQL table.
func WithFencedStore(s FencedStore) Option {
	return func(c *config) {
		problem := ""
		if s == nil {
			problem = "store must not be nil"
		}
		c.set("WithFencedStore", problem)
		c.fenced.store = s
	}
}

// NewFencedWriter returns a FencedWriter for leases of g. By default it
// stores values as fenced records of g's driver; see [WithFencedStore].
// It fails with InvalidArgument for invalid options and does no I/O.
func NewFencedWriter[C Fenced](g *Guard[C], opts ...Option) (*FencedWriter[C], error) {
	if g == nil {
		return nil, invalidArg("NewFencedWriter: guard must not be nil")
	}
	c := config{}
	if err := applyOptions(&c, "NewFencedWriter", []string{"WithFencedStore", "WithPrefix", "WithRetention"}, opts); err != nil {
		return nil, err
	}
	store := c.fenced.store
	if store == nil {
		if g.records == nil {
			return nil, invalidArg("NewFencedWriter: the driver has no record store")
		}
		rs := recordFencedStore{rs: g.records, prefix: "fenced:"}
		if c.prefix != nil {
			rs.prefix = *c.prefix
		}
		if c.ret != nil {
			rs.ttl = *c.ret
		}
		store = rs
	}
	return &FencedWriter[C]{store: store}, nil
}

// Write stores value for resource under l's fence. It returns nil when the
// store accepted the write, an error matching [ErrStaleFence] when a newer
// holder's write was accepted before (nothing changed), InvalidArgument for
// a nil lease or an invalid resource name, or the store's error.
//
// Write does not check that l is still held: the fence comparison is what
// protects the resource, and it holds even when the lease expired unseen.
func (w *FencedWriter[C]) Write(ctx context.Context, l *Lease[C], resource string, value []byte) error {
	if ctx == nil {
		return invalidArg("nil context")
	}
	if l == nil {
		return invalidArg("FencedWriter.Write: lease must not be nil")
	}
	return w.store.WriteFenced(ctx, resource, FenceOf(l), value)
}

// Read returns the value and fence last accepted for resource, or nil if
// there is none.
func (w *FencedWriter[C]) Read(ctx context.Context, resource string) (*driver.Record, error) {
	if ctx == nil {
		return nil, invalidArg("nil context")
	}
	return w.store.ReadFenced(ctx, resource)
}

// recordFencedStore is the driver-backed FencedStore: one fenced record per
// resource.
type recordFencedStore struct {
	rs     driver.RecordStore
	prefix string
	ttl    time.Duration
}

func (s recordFencedStore) name(resource string) (string, error) {
	return prefixedName(s.prefix, resource)
}

func (s recordFencedStore) WriteFenced(ctx context.Context, resource string, fence Fence, value []byte) error {
	name, err := s.name(resource)
	if err != nil {
		return err
	}
	res, err := s.rs.PutRecord(ctx, name, fence, value, s.ttl)
	if err != nil {
		return err
	}
	if !res.Stored {
		return staleFence(name, fence, res.Fence)
	}
	return nil
}

func (s recordFencedStore) ReadFenced(ctx context.Context, resource string) (*driver.Record, error) {
	name, err := s.name(resource)
	if err != nil {
		return nil, err
	}
	return s.rs.GetRecord(ctx, name)
}
