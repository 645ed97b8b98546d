package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes every connection's data back and sends what it
// received on got (the target executed the request). It stops when t ends.
func echoServer(t *testing.T) (addr string, got <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 16)
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			go func() {
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						ch <- string(buf[:n])
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), ch
}

// outcome is what a client saw after writing one request.
type outcome struct {
	Reply    string // what it read back ("" if nothing)
	Executed bool   // the target received the request
	Reset    bool   // the read failed with ECONNRESET
	Timeout  bool   // nothing arrived within the read deadline
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault func(p *Proxy)
		want  outcome
	}{
		{
			name:  "no fault",
			fault: func(*Proxy) {},
			want:  outcome{Reply: "req", Executed: true},
		},
		{
			name:  "reset: request executed, reply lost, connection reset",
			fault: func(p *Proxy) { p.Reset(true) },
			want:  outcome{Executed: true, Reset: true},
		},
		{
			name:  "reset next: request executed, reply lost, connection reset",
			fault: func(p *Proxy) { p.ResetNext() },
			want:  outcome{Executed: true, Reset: true},
		},
		{
			name:  "blackhole: nothing passes, nothing is closed",
			fault: func(p *Proxy) { p.Blackhole(true) },
			want:  outcome{Timeout: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target, got := echoServer(t)
			p, err := Start(target)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc.fault(p)
			if _, err := c.Write([]byte("req")); err != nil {
				t.Fatal(err)
			}
			var o outcome
			select {
			case <-got:
				o.Executed = true
			case <-time.After(300 * time.Millisecond):
			}
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			o.Reply = string(buf[:n])
			switch {
			case err == nil:
			case errors.Is(err, syscall.ECONNRESET):
				o.Reset = true
			case errors.Is(err, os.ErrDeadlineExceeded):
				o.Timeout = true
			default:
				t.Fatalf("read: %v", err)
			}
			if diff := cmp.Diff(tc.want, o); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDropConns: the open connections end (EOF) and the proxy keeps
// listening: a client redials.
func TestDropConns(t *testing.T) {
	target, _ := echoServer(t)
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("req")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	p.DropConns()
	if n, err := c.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read after DropConns = %d bytes, %v; want EOF", n, err)
	}
	if got := roundTrip(t, p.Addr(), "again"); got != "again" {
		t.Fatalf("after DropConns: %q; want %q", got, "again")
	}
}

// TestBlackholeDeliversAfterHeal: what was sent during a partition arrives
// once it heals, in order, on the same connection (as TCP does).
func TestBlackholeDeliversAfterHeal(t *testing.T) {
	target, _ := echoServer(t)
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.Blackhole(true)
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read during the partition = %d bytes, %v; want a timeout", n, err)
	}
	p.Blackhole(false)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held" {
		t.Fatalf("read after the heal = %q, %v; want %q", buf, err, "held")
	}
}

// TestResetEndsForNewConnections: while resetting, a new connection's
// first reply (a handshake's) resets it too; after Reset(false) new
// connections work.
func TestResetEndsForNewConnections(t *testing.T) {
	target, _ := echoServer(t)
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Reset(true)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read on a new connection while resetting: %v; want ECONNRESET", err)
	}
	p.Reset(false)
	if got := roundTrip(t, p.Addr(), "ok"); got != "ok" {
		t.Fatalf("after Reset(false): %q; want %q", got, "ok")
	}
}

// TestResetNextOnce: ResetNext resets the connection of the next reply
// only; a reply after it, on another connection, passes.
func TestResetNextOnce(t *testing.T) {
	target, _ := echoServer(t)
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.ResetNext()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read of the reply after ResetNext: %v; want ECONNRESET", err)
	}
	if got := roundTrip(t, p.Addr(), "next"); got != "next" {
		t.Fatalf("the reply after the reset one: %q; want %q", got, "next")
	}
}

// TestCloseRefuses: after Close, dials are refused and open connections
// end.
func TestCloseRefuses(t *testing.T) {
	target, _ := echoServer(t)
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 8)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after Close: %v; want the connection closed", err)
	}
	if c2, err := net.Dial("tcp", p.Addr()); err == nil {
		c2.Close()
		t.Fatal("dial after Close succeeded; want refused")
	}
}

// roundTrip sends msg on a new connection through addr and returns the
// reply.
func roundTrip(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("round trip through %s: %v", addr, err)
	}
	return string(buf)
}

// A pool refuses dials after Close, so a late dial (a client reconnecting
// while its test ends) cannot start a proxy that nobody closes.
func TestPoolDialAfterClose(t *testing.T) {
	p := NewPool()
	p.Close()
	if c, err := p.DialContext(context.Background(), "127.0.0.1:1"); !errors.Is(err, net.ErrClosed) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("DialContext after Close = %v; want net.ErrClosed", err)
	}
}
