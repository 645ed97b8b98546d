package postgres

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/syncguard/syncguard/driver"
)

// Timing of the LISTEN connection.
const (
	listenReadyTimeout = 5 * time.Second        // WatchRelease waits this long for LISTEN
	listenIdle         = 30 * time.Second       // the connection closes after this long without watchers
	listenPoll         = 500 * time.Millisecond // idle and stop checks
	listenBackoffMin   = 50 * time.Millisecond
	listenBackoffMax   = 2 * time.Second
)

// watcher is one WatchRelease subscription, or one queued waiter of
// WatchHandoff (id set).
type watcher struct {
	ch    chan struct{} // capacity 1; never closed
	id    string        // the waiter's ID (its lock ID once granted); "" for WatchRelease
	grant *grant        // a grant received for id, not yet claimed; guarded by listener.mu
}

// listener owns the dedicated LISTEN connection and fans notifications out
// to the watchers of each key. It runs one goroutine while it has watchers
// (and for listenIdle after the last one leaves).
type listener struct {
	d *Driver

	mu       sync.Mutex
	watchers map[string]map[*watcher]struct{} // by md5 hex of the base key
	waiters  map[string]*watcher              // queued waiters by ID
	recent   map[string]time.Time             // key hash → when its last queued waiter left
	count    int
	idleFrom time.Time
	running  bool
	closed   bool
	up       bool          // LISTEN is active
	ready    chan struct{} // closed when LISTEN becomes active
	fail     chan struct{} // closed when a connection attempt fails
	failErr  error
	stop     context.CancelFunc
	done     chan struct{}
	wg       sync.WaitGroup // every goroutine ever started
}

func newListener(d *Driver) *listener {
	return &listener{d: d, watchers: make(map[string]map[*watcher]struct{}),
		waiters: make(map[string]*watcher), recent: make(map[string]time.Time)}
}

// payloadFor is the NOTIFY payload of a base key: md5(key) in hex, as the
// release statement computes it (payloads are limited to 8000 bytes; keys
// are not sent).
func payloadFor(base string) string {
	sum := md5.Sum([]byte(base))
	return hex.EncodeToString(sum[:])
}

// WatchRelease subscribes to releases of key through LISTEN/NOTIFY on a
// dedicated connection (see [WithListenConfig]). The returned channel
// (capacity one, never closed) receives a value when a lock of key is
// released; signals coalesce, never block, and may be spurious (other keys
// with the same hash, the key taken again, every reconnection of the LISTEN
// connection, which may have missed notifications). Expiry by itself does
// not signal: waiters keep their backoff fallback.
//
// The first subscription waits (bounded by ctx and 5s) until LISTEN is
// active, so a release that follows the return is seen; then WatchRelease
// looks at the key once and signals at once if it is already free (a
// release just before the subscription is not missed). stop ends the
// subscription; it is idempotent and safe to call concurrently; the
// subscription also ends with ctx. The LISTEN connection closes 30s after
// its last subscription ends, or at [Driver.Close].
func (d *Driver) WatchRelease(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	_, base, err := driver.CheckKeyAs(ctx, key, baseKey)
	if err != nil {
		return nil, nil, err
	}
	w := &watcher{ch: make(chan struct{}, 1)}
	h := payloadFor(base)
	stop, _, err := d.subscribe(ctx, h, w)
	if err != nil {
		return nil, nil, err
	}
	// A release between the caller's last look at the key and LISTEN
	// taking effect sent its notification to nobody: look once more, now
	// that notifications are delivered, and signal at once if the key is
	// free (at worst a spurious wake-up). Errors only skip the check.
	var exp *int64
	var nowMs int64
	if err := d.pool.QueryRow(ctx, d.q.isLocked, base).Scan(&exp, &nowMs); err == nil &&
		(exp == nil || !driver.IsLive(*exp, nowMs)) {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
	return w.ch, stop, nil
}

// permitNotifyPrefix starts the string whose md5 is the NOTIFY payload of
// a key's permit releases: md5("permit:" + base). A lock key
// "permit:<base>" shares it, which only makes a wake-up spurious.
const permitNotifyPrefix = "permit:"

// WatchPermits subscribes to permit releases of key ([driver.PermitWatcher])
// on the LISTEN connection of WatchRelease: ReleasePermit notifies
// md5("permit:" + key) as Release notifies md5(key). The channel holds a
// signal on return, so that a release just before LISTEN took effect is
// not missed (the waiter makes one more attempt); otherwise it behaves as
// WatchRelease's.
func (d *Driver) WatchPermits(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	_, base, err := driver.CheckKeyAs(ctx, key, baseKey)
	if err != nil {
		return nil, nil, err
	}
	w := &watcher{ch: make(chan struct{}, 1)}
	stop, _, err := d.subscribe(ctx, payloadFor(permitNotifyPrefix+base), w)
	if err != nil {
		return nil, nil, err
	}
	select {
	case w.ch <- struct{}{}:
	default: // a release was notified already
	}
	return w.ch, stop, nil
}

// subscribe registers w for the key with payload hash h and waits (bounded
// by ctx and listenReadyTimeout) until LISTEN is active. The returned stop
// unregisters w; it is idempotent, and also runs when ctx ends. refused
// reports that no subscription is to be had (wake-ups switched off, the
// LISTEN connection failing or not ready in time), as opposed to ctx
// ending or the driver being closed.
func (d *Driver) subscribe(ctx context.Context, h string, w *watcher) (stop func(), refused bool, err error) {
	if !d.opts.wakeups {
		return nil, true, &driver.LockError{Code: driver.Internal,
			Message: "postgres: wake-ups are disabled (WithWakeups(false))", Cause: errUnsupported}
	}
	l := d.lis
	ready, fail, err := l.add(h, w)
	if err != nil {
		return nil, false, err
	}
	var once sync.Once
	remove := func() { once.Do(func() { l.remove(h, w) }) }
	if ready != nil {
		timer := time.NewTimer(listenReadyTimeout)
		defer timer.Stop()
		select {
		case <-ready:
		case <-fail:
			remove()
			l.mu.Lock()
			ferr := l.failErr
			l.mu.Unlock()
			if ctx.Err() != nil {
				return nil, false, driver.ContextError(ctx.Err())
			}
			return nil, true, mapError(ctx, ferr)
		case <-ctx.Done():
			remove()
			return nil, false, driver.ContextError(ctx.Err())
		case <-timer.C:
			remove()
			return nil, true, driver.NewError(driver.NetworkTimeout, "postgres: LISTEN connection not ready")
		}
	}
	unregister := context.AfterFunc(ctx, remove)
	return func() {
		unregister()
		remove()
	}, false, nil
}

// add registers w and starts the goroutine if needed. It returns channels
// to wait on when LISTEN is not active yet.
func (l *listener) add(h string, w *watcher) (ready, fail chan struct{}, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, nil, driver.NewError(driver.ServiceUnavailable, "postgres: driver is closed")
	}
	set := l.watchers[h]
	if set == nil {
		set = make(map[*watcher]struct{})
		l.watchers[h] = set
	}
	set[w] = struct{}{}
	if w.id != "" {
		l.waiters[w.id] = w
	}
	l.count++
	if !l.running {
		l.running = true
		l.up = false
		l.ready = make(chan struct{})
		l.fail = make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		l.stop = cancel
		l.done = make(chan struct{})
		l.wg.Add(1)
		go l.run(ctx, l.done)
	}
	if l.up {
		return nil, nil, nil
	}
	return l.ready, l.fail, nil
}

func (l *listener) remove(h string, w *watcher) {
	l.mu.Lock()
	defer l.mu.Unlock()
	set := l.watchers[h]
	if _, ok := set[w]; !ok {
		return
	}
	delete(set, w)
	if len(set) == 0 {
		delete(l.watchers, h)
	}
	if w.id != "" {
		delete(l.waiters, w.id)
		l.noteRecent(h)
	}
	l.count--
	if l.count == 0 {
		l.idleFrom = time.Now()
	}
}

// close stops the goroutine and waits for it.
func (l *listener) close() {
	l.mu.Lock()
	l.closed = true
	stop, done := l.stop, l.done
	l.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	l.wg.Wait()
}

// signal handles a notification: a grant wakes its waiter only; a key
// hash wakes the watchers (and queued waiters) of that key; "" wakes all.
func (l *listener) signal(h string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	wake := func(set map[*watcher]struct{}) {
		for w := range set {
			select {
			case w.ch <- struct{}{}:
			default:
			}
		}
	}
	if id, g, ok := parseGrant(h); ok {
		if w := l.waiters[id]; w != nil {
			w.grant = &g
			select {
			case w.ch <- struct{}{}:
			default:
			}
		}
		return
	}
	if h != "" {
		wake(l.watchers[h])
		return
	}
	for _, set := range l.watchers {
		wake(set)
	}
}

// idle reports (and, if so, records the exit of the goroutine) whether
// the listener has had no watchers for listenIdle.
func (l *listener) exitIfIdle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count == 0 && time.Since(l.idleFrom) >= listenIdle {
		l.running, l.up = false, false
		return true
	}
	return false
}

func (l *listener) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := l.d.opts.listenConfig
	if cfg == nil {
		cfg = l.d.pool.Config().ConnConfig
	}
	cfg = cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = l.d.q.listenApp
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, l.d.q.listen); err != nil {
		_ = conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// run is the listener goroutine: connect, LISTEN, dispatch, reconnect.
func (l *listener) run(ctx context.Context, done chan struct{}) {
	defer l.wg.Done()
	defer close(done)
	backoff := listenBackoffMin
	first := true
	for {
		if ctx.Err() != nil {
			l.exit()
			return
		}
		conn, err := l.connect(ctx)
		if err != nil {
			l.mu.Lock()
			l.failErr = err
			close(l.fail)
			l.fail = make(chan struct{})
			l.mu.Unlock()
			if l.exitIfIdle() {
				return
			}
			select {
			case <-ctx.Done():
				l.exit()
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, listenBackoffMax)
			continue
		}
		backoff = listenBackoffMin
		// Releases learn of listeners from a probe they cache for up to
		// listenerProbeTTL (see Driver.listenerSeen): wait until every
		// cached "nobody listens" predates this connection, so that a
		// release that follows WatchRelease's return notifies.
		select {
		case <-ctx.Done():
		case <-time.After(listenSeenDelay):
		}
		l.mu.Lock()
		l.up = true
		select {
		case <-l.ready:
		default:
			close(l.ready)
		}
		l.mu.Unlock()
		if !first {
			// Notifications may have been missed while disconnected.
			l.signal("")
		}
		first = false
		exit := l.serve(ctx, conn)
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
		if exit {
			return
		}
		l.mu.Lock()
		l.up = false
		l.ready = make(chan struct{})
		l.mu.Unlock()
	}
}

// exit marks the goroutine stopped.
func (l *listener) exit() {
	l.mu.Lock()
	l.running, l.up = false, false
	l.mu.Unlock()
}

// serve dispatches notifications until the connection fails (false) or the
// listener should stop (true).
func (l *listener) serve(ctx context.Context, conn *pgx.Conn) bool {
	for {
		wctx, cancel := context.WithTimeout(ctx, listenPoll)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if n != nil {
			l.signal(n.Payload)
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			l.exit()
			return true
		}
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			if conn.IsClosed() {
				return false
			}
			if l.exitIfIdle() {
				return true
			}
			continue
		}
		return false
	}
}
