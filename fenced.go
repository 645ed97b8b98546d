package syncguard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// ErrStaleFence reports a write refused because the store already accepted a
// newer fence for the resource: a newer lock holder has written, so the
// writer's lease expired or was lost. Nothing changed; do not retry with the
// same lease.
var ErrStaleFence = errors.New("syncguard: stale fence: a newer lock holder has written")

// staleFence returns an error matching ErrStaleFence that names both fences.
func staleFence(name string, fence, current Fence) error {
	return fmt.Errorf("%w (resource %s: fence %s, stored %s)", ErrStaleFence, driver.HashKey(name), fence, current)
}

// FencedStore is where a [FencedWriter] writes. WriteFenced must compare and
// write in one atomic step: store value only if the stored fence is absent or
// ≤ fence, otherwise change nothing and return an error matching
// [ErrStaleFence]. Package pgfence implements it over a PostgreSQL table.
type FencedStore interface {
	// WriteFenced stores value for resource under fence, or fails with
	// ErrStaleFence.
	WriteFenced(ctx context.Context, resource string, fence Fence, value []byte) error
	// ReadFenced returns the value and fence stored for resource, or nil.
	ReadFenced(ctx context.Context, resource string) (*driver.Record, error)
}

// FencedWriter makes writes that a stale lock holder cannot make: each write
// carries the fence of the writer's lease, and the store refuses one older
// than a fence it accepted for that resource ([ErrStaleFence]). All writes to
// one resource must use leases of one lock key, since fences are ordered per
// key. A FencedWriter is safe for concurrent use.
type FencedWriter[C Fenced] struct {
	store FencedStore
}

type fencedConfig struct {
	store FencedStore
}

// WithFencedStore makes a [FencedWriter] write to s instead of the Guard's
// driver.
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

// NewFencedWriter returns a FencedWriter for leases of g, without I/O. It
// writes fenced records of g's driver (taking [WithPrefix] and
// [WithRetention]) unless [WithFencedStore] gives another store, and fails
// with InvalidArgument for a nil g or invalid options.
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

// Write stores value for resource under l's fence, even if l has expired: the
// fence comparison protects the resource. It returns an error matching
// [ErrStaleFence] if a newer fence was accepted (nothing changed),
// InvalidArgument for a nil ctx or lease or an invalid resource name, or the
// store's error.
func (w *FencedWriter[C]) Write(ctx context.Context, l *Lease[C], resource string, value []byte) error {
	if ctx == nil {
		return invalidArg("nil context")
	}
	if l == nil {
		return invalidArg("FencedWriter.Write: lease must not be nil")
	}
	return w.store.WriteFenced(ctx, resource, FenceOf(l), value)
}

// Read returns the value and fence last accepted for resource, or nil.
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
