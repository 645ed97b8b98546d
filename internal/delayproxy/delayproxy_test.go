package delayproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// echoServer accepts connections on loopback and echoes what it reads.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// roundTrip writes a message on c and reads its echo, returning how long
// that took.
func roundTrip(t *testing.T, c net.Conn, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
	return time.Since(start)
}

func TestPool(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the echo servers stop
	const delay = 50 * time.Millisecond
	a, b := echoServer(t), echoServer(t)
	p := NewPool(delay)
	ctx := context.Background()
	var conns []net.Conn
	for _, target := range []string{a, b, a} {
		c, err := p.DialContext(ctx, target)
		if err != nil {
			t.Fatalf("DialContext(%s): %v", target, err)
		}
		conns = append(conns, c)
		// Delayed each way: a round trip takes at least 2×delay.
		if d := roundTrip(t, c, "ping "+target); d < 2*delay {
			t.Errorf("round trip to %s took %v; want ≥ %v", target, d, 2*delay)
		}
	}
	if n := len(p.ps); n != 2 {
		t.Errorf("pool runs %d proxies for 2 targets; want 2", n)
	}
	p.Close()
	for _, c := range conns {
		c.Close()
	}
	if _, err := p.DialContext(ctx, a); !errors.Is(err, net.ErrClosed) {
		t.Errorf("DialContext after Close = %v; want net.ErrClosed", err)
	}
}
