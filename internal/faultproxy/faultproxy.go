// Package faultproxy is a loopback TCP proxy for fault tests: it forwards
// connections to a target and can blackhole them (stop forwarding without
// closing anything, in both directions, for open and new connections),
// slow them (delay every chunk), reset them when the target answers
// (requests executed, replies lost) or drop them all (clients redial).
// Stopping it refuses new connections and closes open ones, as a stopped
// server would.
package faultproxy

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards the connections it accepts on Addr to a target.
type Proxy struct {
	ln     net.Listener
	target string
	// delay is the per-chunk delay; blackhole holds every chunk; reset
	// resets a connection instead of forwarding what the target sends;
	// resetNext does so once.
	delay     atomic.Int64
	blackhole atomic.Bool
	reset     atomic.Bool
	resetNext atomic.Bool
	wg        sync.WaitGroup
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	closed    bool
}

// Start listens on an ephemeral loopback port and forwards every
// connection to target (host:port). Close stops it.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, s, true)
		go p.pipe(s, c, false)
	}
}

// pipe copies src to dst chunk by chunk, holding chunks while the proxy
// blackholes (as a network partition does: nothing arrives, nothing is
// closed, and what TCP had sent is delivered once the partition heals;
// dropping bytes instead would corrupt the stream) and delaying them while
// it is slow. fromTarget is the direction of the target's replies: while
// the proxy resets, a chunk from the target is dropped and the client's
// connection reset (RST, not FIN), which ends both pipes.
func (p *Proxy) pipe(dst, src net.Conn, fromTarget bool) {
	defer p.wg.Done()
	defer p.forget(dst)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for p.blackhole.Load() && !p.isClosed() {
				time.Sleep(5 * time.Millisecond)
			}
			if fromTarget && (p.reset.Load() || p.resetNext.CompareAndSwap(true, false)) {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // Close sends RST
				}
				src.Close()
				return
			}
			if d := time.Duration(p.delay.Load()); d > 0 {
				time.Sleep(d)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// forget closes c and removes it from the open connections.
func (p *Proxy) forget(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Addr is the proxy's listening address (127.0.0.1:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Blackhole starts (true) or ends (false) a partition: no data passes,
// connections stay open, and data sent meanwhile is delivered after it.
func (p *Proxy) Blackhole(on bool) { p.blackhole.Store(on) }

// Slow delays every chunk by d in each direction (0: no delay).
func (p *Proxy) Slow(d time.Duration) { p.delay.Store(int64(d)) }

// Reset starts (true) or ends (false) resetting connections: while on,
// whatever the target sends is dropped and the connection it came on is
// reset towards the client (TCP RST) and closed towards the target, on
// open and new connections alike. Requests reach the target and are
// executed; their replies are lost, and so is every handshake of a
// redialled connection.
func (p *Proxy) Reset(on bool) { p.reset.Store(on) }

// ResetNext arms a one-shot Reset: the next chunk the target sends, on
// whichever connection, is dropped and that connection reset as under
// Reset; later chunks pass. Exactly one request is executed with its reply
// lost, and what the client does next (a compensation, a retry) goes
// through.
func (p *Proxy) ResetNext() { p.resetNext.Store(true) }

// DropConns closes every open connection, keeping the listener: clients
// see their connections end and redial, as after a server restart or a
// middlebox that forgot its connections.
func (p *Proxy) DropConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// Pool hands out one Proxy per target, started on first use, and applies
// faults to all of them: a client whose dial function goes through
// DialContext (rueidis's ClientOption.DialCtxFn) reaches every node it
// learns of, a Redis Cluster's included, through the pool.
type Pool struct {
	mu        sync.Mutex
	proxies   map[string]*Proxy
	delay     time.Duration
	blackhole bool
	closed    bool
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{proxies: map[string]*Proxy{}} }

// DialContext connects to target through its proxy. After Close it fails
// with net.ErrClosed, so a late dial cannot start a proxy nobody closes.
func (p *Pool) DialContext(ctx context.Context, target string) (net.Conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, net.ErrClosed
	}
	px, ok := p.proxies[target]
	if !ok {
		var err error
		if px, err = Start(target); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		px.Slow(p.delay)
		px.Blackhole(p.blackhole)
		p.proxies[target] = px
	}
	p.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, "tcp", px.Addr())
}

// Blackhole applies Proxy.Blackhole to every proxy, present and future.
func (p *Pool) Blackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackhole = on
	for _, px := range p.proxies {
		px.Blackhole(on)
	}
}

// Slow applies Proxy.Slow to every proxy, present and future.
func (p *Pool) Slow(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
	for _, px := range p.proxies {
		px.Slow(d)
	}
}

// Close closes every proxy; later dials fail.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, px := range p.proxies {
		px.Close()
	}
	clear(p.proxies)
}
