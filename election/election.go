// Package election is leader election over a [syncguard.Guard]: one
// leader per election key at a time, across processes, with a term that
// strictly increases from leader to leader and a value the leader
// publishes for its followers (an address, an instance name).
//
// A leader is the holder of the election key's lock; its term is the
// lock's fence, so a store written under the term can refuse a deposed
// leader (see [syncguard.FencedWriter]). Leadership is a
// [syncguard.Lease]: it extends itself, and a leader that can no longer
// keep it sees Lost close before its lock expires (plus the contract's
// tolerance), so before anyone else can be elected. A leader whose process
// dies is replaced once its TTL and the tolerance have passed; one that
// resigns is replaced at once.
//
// It needs a driver with fenced records: every bundled driver but the
// Redis lock-only mode.
package election

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// ErrNoLeader is returned by [Election.Leader] when no one leads.
var ErrNoLeader = errors.New("election: no leader")

// Leader is a term of an election: its fence and the value its leader
// published.
type Leader struct {
	// Term is the leader's lock fence: strictly greater than every earlier
	// leader's.
	Term syncguard.Fence
	// Value is what the leader published with Campaign; nil while a new
	// leader has not published yet (between its election and the return of
	// its Campaign).
	Value []byte
}

// MaxValueBytes is the largest value a candidate may publish.
const MaxValueBytes = 4096

// Election is one election key. It is safe for concurrent use.
type Election[C syncguard.Fenced] struct {
	g    *syncguard.Guard[C]
	w    *syncguard.FencedWriter[C]
	key  string
	poll time.Duration
}

// Option configures an [Election]; pass options to [New].
type Option func(*config) error

type config struct{ poll time.Duration }

// WithPollInterval sets how often [Election.Observe] reads the election
// (default 200ms; at least 10ms).
func WithPollInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < 10*time.Millisecond {
			return driver.NewError(driver.InvalidArgument, fmt.Sprintf("election: poll interval must be at least 10ms, got %v", d))
		}
		c.poll = d
		return nil
	}
}

// New returns the election of key among the users of g, without I/O. It
// fails with InvalidArgument for a nil g, an invalid key or option, or a
// driver without fenced records.
func New[C syncguard.Fenced](g *syncguard.Guard[C], key string, opts ...Option) (*Election[C], error) {
	if g == nil {
		return nil, driver.NewError(driver.InvalidArgument, "election: guard must not be nil")
	}
	if err := g.Err(); err != nil {
		return nil, err
	}
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return nil, err
	}
	c := config{poll: 200 * time.Millisecond}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	w, err := syncguard.NewFencedWriter(g, syncguard.WithPrefix("election:"))
	if err != nil {
		return nil, err
	}
	return &Election[C]{g: g, w: w, key: k, poll: c.poll}, nil
}

// Key returns the normalised election key.
func (e *Election[C]) Key() string { return e.key }

// Campaign blocks until this caller is elected or ctx ends, then publishes
// value (at most [MaxValueBytes]) and returns the leadership. opts are
// [syncguard.Guard.Acquire]'s (TTL, retry pacing); the lease extends
// itself unless AutoExtend(false). Resign with [Election.Resign] (or the
// lease's Release); watch the lease's Lost or Context to stop leading when
// leadership is lost. Campaign returns ctx's error (Aborted or
// NetworkTimeout), InvalidArgument, or a backend error it could not wait
// out.
func (e *Election[C]) Campaign(ctx context.Context, value []byte, opts ...syncguard.AcquireOption) (*syncguard.Lease[C], error) {
	if len(value) > MaxValueBytes {
		return nil, driver.NewError(driver.InvalidArgument, fmt.Sprintf("election: value is %d bytes; at most %d", len(value), MaxValueBytes))
	}
	opts = append([]syncguard.AcquireOption{syncguard.AutoExtend(true)}, opts...)
	for {
		l, err := e.g.Acquire(ctx, e.key, opts...)
		if errors.Is(err, syncguard.ErrLocked) && ctx.Err() == nil {
			continue // someone leads; keep campaigning
		}
		if err != nil {
			return nil, err
		}
		if err := e.publish(ctx, l, value); err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = l.Release(rctx)
			cancel()
			return nil, err
		}
		return l, nil
	}
}

// publish adds the term of l with value to the election's history.
func (e *Election[C]) publish(ctx context.Context, l *syncguard.Lease[C], value []byte) error {
	h, err := e.history(ctx)
	if err != nil {
		return err
	}
	h = appendTerm(h, Leader{Term: syncguard.FenceOf(l), Value: value})
	return e.w.Write(ctx, l, e.key, encodeHistory(h))
}

// history reads the published terms, oldest first.
func (e *Election[C]) history(ctx context.Context) ([]Leader, error) {
	r, err := e.w.Read(ctx, e.key)
	if err != nil || r == nil {
		return nil, err
	}
	return decodeHistory(r.Value)
}

// Resign ends the leadership l: it releases the lease, so that the next
// candidate is elected at once. It reports the release's error.
func (e *Election[C]) Resign(ctx context.Context, l *syncguard.Lease[C]) error {
	if l == nil {
		return driver.NewError(driver.InvalidArgument, "election: Resign of a nil lease")
	}
	_, err := l.Release(ctx)
	return err
}

// Leader returns the current leader, or [ErrNoLeader].
func (e *Election[C]) Leader(ctx context.Context) (Leader, error) {
	info, err := e.g.Lookup(ctx, e.key)
	if err != nil {
		return Leader{}, err
	}
	if info == nil {
		return Leader{}, ErrNoLeader
	}
	h, err := e.history(ctx)
	if err != nil {
		return Leader{}, err
	}
	for _, t := range h {
		if t.Term == info.Fence {
			return t, nil
		}
	}
	return Leader{Term: info.Fence}, nil
}

// Observe returns a channel that receives the leader current when Observe
// is called (if any) and then every later leader, in term order, until ctx
// ends, when it is closed. Observe reads the election once before it
// returns, then every poll interval ([WithPollInterval]); terms that began
// and ended between two reads are still delivered, as long as no more than
// 16 leaders came between them. A failed read is retried at the next
// interval.
func (e *Election[C]) Observe(ctx context.Context) <-chan Leader {
	ch := make(chan Leader)
	cur, last, err := e.baseline(ctx)
	go func() {
		defer close(ch)
		t := time.NewTicker(e.poll)
		defer t.Stop()
		for err != nil {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cur, last, err = e.baseline(ctx)
		}
		if cur != nil && !send(ctx, ch, *cur) {
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			h, err := e.history(ctx)
			if err != nil {
				continue
			}
			for _, l := range h {
				if l.Term > last {
					if !send(ctx, ch, l) {
						return
					}
					last = l.Term
				}
			}
		}
	}()
	return ch
}

// baseline is where an observer starts: the current leader, if it has
// published its value, and the last term it need not deliver. The history
// is read before the lock, so a leader elected in between has a greater
// term than last and is delivered by the next poll.
func (e *Election[C]) baseline(ctx context.Context) (cur *Leader, last syncguard.Fence, err error) {
	h, err := e.history(ctx)
	if err != nil {
		return nil, 0, err
	}
	info, err := e.g.Lookup(ctx, e.key)
	if err != nil {
		return nil, 0, err
	}
	for i, l := range h {
		last = max(last, l.Term)
		if info != nil && l.Term == info.Fence {
			cur = &h[i]
		}
	}
	return cur, last, nil
}

func send(ctx context.Context, ch chan<- Leader, l Leader) bool {
	select {
	case ch <- l:
		return true
	case <-ctx.Done():
		return false
	}
}
