// Package delayproxy is a loopback TCP proxy that delays every chunk of
// data by a fixed latency in each direction, order preserved. Driver tests
// use it to put a request in flight long enough to cancel it there
// (conformance cases 094 FIX and 097).
package delayproxy

import (
	"context"
	"net"
	"sync"
	"time"
)

// Proxy forwards the connections it accepts on Addr to a target.
type Proxy struct {
	ln    net.Listener
	delay time.Duration
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

// Start listens on an ephemeral loopback port and forwards every
// connection to target (host:port), delaying each chunk by delay in both
// directions. Close stops it.
func Start(target string, delay time.Duration) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, delay: delay}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p, nil
}

// Addr is the proxy's listening address (127.0.0.1:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's listening port.
func (p *Proxy) Port() uint16 { return uint16(p.ln.Addr().(*net.TCPAddr).Port) }

type chunk struct {
	at time.Time
	b  []byte
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	q := make(chan chunk, 1024)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for c := range q {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.b); err != nil {
				for range q {
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{at: time.Now().Add(p.delay), b: append([]byte(nil), buf[:n]...)}
		}
		if err != nil {
			break
		}
	}
	close(q)
	wg.Wait()
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// Close stops accepting, closes every forwarded connection and waits for
// the proxy's goroutines.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Pool delays connections to any number of targets: it starts one Proxy
// per target on first use. It suits clients that learn the addresses they
// connect to from the server (a Redis Cluster's nodes, a Sentinel's
// primary) and let a dial function be plugged in.
type Pool struct {
	delay time.Duration
	mu    sync.Mutex
	ps    map[string]*Proxy
	done  bool
}

// NewPool returns a Pool delaying each chunk by delay in both directions.
func NewPool(delay time.Duration) *Pool {
	return &Pool{delay: delay, ps: map[string]*Proxy{}}
}

// DialContext connects to target (host:port) through the target's Proxy,
// starting it if needed.
func (p *Pool) DialContext(ctx context.Context, target string) (net.Conn, error) {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return nil, net.ErrClosed
	}
	px := p.ps[target]
	if px == nil {
		var err error
		if px, err = Start(target, p.delay); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		p.ps[target] = px
	}
	p.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, "tcp", px.Addr())
}

// Close closes every Proxy of the pool; later dials fail.
func (p *Pool) Close() {
	p.mu.Lock()
	p.done = true
	ps := p.ps
	p.ps = nil
	p.mu.Unlock()
	for _, px := range ps {
		px.Close()
	}
}
