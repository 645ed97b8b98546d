package reliability

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
)

// Hostile inputs against every public entry point of the drivers, of Guard
// and of the primitives: each call must return without panicking; an input
// the key rule accepts (valid) must succeed, an invalid one must fail with
// InvalidArgument. Any other outcome is listed as a finding: InvalidArgument
// for a valid key is a finding too (PostgreSQL once refused NUL bytes with
// SQLSTATE 22021 after a round trip).

var (
	tenMB      = strings.Repeat("k", 10<<20)
	invalidUTF = "bad\xff\xfekey"
)

type hostileInput struct {
	name   string
	ctx    context.Context
	key    string
	lockID string
	ttl    time.Duration
	// valid: the input is acceptable (the key rule accepts the key): the
	// call must succeed.
	valid bool
}

//nolint:staticcheck // nil contexts are the point.
func hostileInputs() []hostileInput {
	ctx := context.Background()
	id := driver.NewLockID()
	return []hostileInput{
		{"NUL byte in key", ctx, "a\x00b", id, time.Second, true},
		{"NUL-only key", ctx, "\x00", id, time.Second, true},
		{"control characters in key", ctx, "c\x01\x1b[31m\r\n\t\x7f\u0085\u009f", id, time.Second, true},
		{"astral-plane key", ctx, "🔒\U00020000\U000e0001\U0010fffd", id, time.Second, true},
		{"ohm sign key (NFC: Ω)", ctx, "\u2126\x00", id, time.Second, true},
		{"512-byte key of 4-byte runes", ctx, strings.Repeat("🔒", 128), id, time.Second, true},
		{"512-byte key of NULs", ctx, strings.Repeat("\x00", 512), id, time.Second, true},
		{"768-byte NFD key (512 in NFC)", ctx, strings.Repeat("e\u0301", 256), id, time.Second, true},
		{"invalid UTF-8 key", ctx, invalidUTF, id, time.Second, false},
		{"empty key", ctx, "", id, time.Second, false},
		{"10 MB key", ctx, tenMB, id, time.Second, false},
		{"513-byte key", ctx, strings.Repeat("é", 256) + "x", id, time.Second, false},
		{"NUL lock ID", ctx, "k", strings.Repeat("\x00", 22), time.Second, false},
		{"invalid UTF-8 lock ID", ctx, "k", strings.Repeat("\xff", 22), time.Second, false},
		{"10 MB lock ID", ctx, "k", tenMB, time.Second, false},
		{"negative TTL", ctx, "k", id, -time.Second, false},
		{"zero TTL", ctx, "k", id, 0, false},
		{"sub-millisecond TTL", ctx, "k", id, 500 * time.Microsecond, false},
		{"huge TTL", ctx, "k", id, math.MaxInt64, false},
		{"nil context", nil, "k", id, time.Second, false},
	}
}

// hostileCall is one entry point.
type hostileCall struct {
	name string
	// uses says which inputs matter for the call (a call that takes no
	// TTL ignores a bad one: then it may succeed).
	usesKey, usesID, usesTTL bool
	call                     func(b driver.Backend, in hostileInput) error
}

var driverCalls = []hostileCall{
	{"Acquire", true, false, true, func(b driver.Backend, in hostileInput) error {
		r, err := b.Acquire(in.ctx, in.key, in.ttl)
		if err == nil && r.Acquired {
			_, _ = b.Release(context.Background(), "", r.LockID)
		}
		return err
	}},
	{"Release", false, true, false, func(b driver.Backend, in hostileInput) error {
		_, err := b.Release(in.ctx, "", in.lockID)
		return err
	}},
	{"Extend", false, true, true, func(b driver.Backend, in hostileInput) error {
		_, err := b.Extend(in.ctx, "", in.lockID, in.ttl)
		return err
	}},
	{"IsLocked", true, false, false, func(b driver.Backend, in hostileInput) error {
		_, err := b.IsLocked(in.ctx, in.key)
		return err
	}},
	{"LookupByKey", true, false, false, func(b driver.Backend, in hostileInput) error {
		_, err := b.LookupByKey(in.ctx, in.key)
		return err
	}},
	{"LookupByID", false, true, false, func(b driver.Backend, in hostileInput) error {
		_, err := b.LookupByID(in.ctx, in.lockID)
		return err
	}},
	{"PutRecord", true, false, true, func(b driver.Backend, in hostileInput) error {
		_, err := b.PutRecord(in.ctx, in.key, 1, []byte("v\x00\xff"), in.ttl)
		return err
	}},
	{"GetRecord", true, false, false, func(b driver.Backend, in hostileInput) error {
		_, err := b.GetRecord(in.ctx, in.key)
		return err
	}},
	{"DeleteRecord", true, false, false, func(b driver.Backend, in hostileInput) error {
		_, err := b.DeleteRecord(in.ctx, in.key, 1)
		return err
	}},
	{"AllowN", true, false, true, func(b driver.Backend, in hostileInput) error {
		// The TTL doubles as the rate period.
		_, err := b.AllowN(in.ctx, in.key, syncguard.RateLimit{Limit: 10, Period: in.ttl, Burst: 10}, 1)
		return err
	}},
	{"AllowN negative n", true, false, false, func(b driver.Backend, in hostileInput) error {
		_, err := b.AllowN(in.ctx, in.key, syncguard.RateLimit{Limit: 10, Period: time.Second, Burst: 10}, -1)
		return err
	}},
	{"ResetRate", true, false, false, func(b driver.Backend, in hostileInput) error {
		return b.ResetRate(in.ctx, in.key)
	}},
}

// guardCalls: Guard's entry points, over a driver.
func guardCalls[C driver.Capabilities](g *syncguard.Guard[C]) []hostileCall {
	return []hostileCall{
		{"Guard.TryAcquire", true, false, true, func(_ driver.Backend, in hostileInput) error {
			l, err := g.TryAcquire(in.ctx, in.key, syncguard.TTL(in.ttl))
			if err == nil {
				l.Close()
			}
			return err
		}},
		{"Guard.Acquire", true, false, true, func(_ driver.Backend, in hostileInput) error {
			l, err := g.Acquire(in.ctx, in.key, syncguard.TTL(in.ttl), syncguard.Timeout(time.Second))
			if err == nil {
				l.Close()
			}
			return err
		}},
		{"Guard.Do", true, false, true, func(_ driver.Backend, in hostileInput) error {
			return g.Do(in.ctx, in.key, func(context.Context, *syncguard.Lease[C]) error { return nil }, syncguard.TTL(in.ttl))
		}},
		{"Guard.Do nil function", false, false, false, func(_ driver.Backend, in hostileInput) error {
			return g.Do(in.ctx, "k", nil)
		}},
		{"Guard.IsLocked", true, false, false, func(_ driver.Backend, in hostileInput) error {
			_, err := g.IsLocked(in.ctx, in.key)
			return err
		}},
		{"Guard.Lookup", true, false, false, func(_ driver.Backend, in hostileInput) error {
			_, err := g.Lookup(in.ctx, in.key)
			return err
		}},
		{"Guard.LookupID", false, true, false, func(_ driver.Backend, in hostileInput) error {
			_, err := g.LookupID(in.ctx, in.lockID)
			return err
		}},
		{"Guard.Owns", false, true, false, func(_ driver.Backend, in hostileInput) error {
			_, err := g.Owns(in.ctx, in.lockID)
			return err
		}},
		{"nil Lease", false, false, true, func(_ driver.Backend, in hostileInput) error {
			var l *syncguard.Lease[C]
			if _, err := l.Release(in.ctx); err != nil {
				return err
			}
			if _, err := l.Extend(in.ctx, in.ttl); err != nil {
				return err
			}
			l.Close()
			return nil
		}},
	}
}

// hostileRun runs every call with every input against b and reports
// findings: panics, and errors other than InvalidArgument where the input
// is invalid for the call (or any error but InvalidArgument for a valid
// one).
func hostileRun(t *testing.T, b driver.Backend, calls []hostileCall) (checked int) {
	t.Helper()
	for _, c := range calls {
		for _, in := range hostileInputs() {
			relevant := in.ctx == nil ||
				(c.usesKey && (strings.Contains(in.name, "key"))) ||
				(c.usesID && strings.Contains(in.name, "lock ID")) ||
				(c.usesTTL && strings.Contains(in.name, "TTL"))
			if !relevant {
				continue
			}
			if !c.usesKey && !c.usesID && !c.usesTTL && in.ctx != nil {
				continue
			}
			checked++
			name := fmt.Sprintf("%s/%s", c.name, in.name)
			err := func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("PANIC: %v", r)
					}
				}()
				return c.call(b, in)
			}()
			wantOK := in.valid && !hostileAlwaysInvalid(c)
			switch code := driver.CodeOf(err); {
			case wantOK && err == nil:
			case wantOK:
				t.Errorf("%s: %v (code %v); want success: the key rule accepts this key", name, truncate(err.Error()), code)
			case err == nil && hostileMayAccept(c, in):
			case code == driver.InvalidArgument:
			case err == nil:
				t.Errorf("%s: accepted; want InvalidArgument", name)
			default:
				t.Errorf("%s: %v (code %v); want InvalidArgument", name, truncate(err.Error()), code)
			}
		}
	}
	return checked
}

// hostileMayAccept: inputs some entry points legitimately accept. A huge
// or sub-millisecond TTL is a valid rate period (the emission interval
// stays ≥ 1µs), a record's TTL 0 means no expiry, a nil lease ignores its
// context and TTL.
func hostileMayAccept(c hostileCall, in hostileInput) bool {
	switch {
	case c.name == "nil Lease", c.name == "NewMutex+TryLock" && in.ctx == nil:
		return true
	case strings.HasPrefix(c.name, "AllowN") && (in.name == "huge TTL" || in.name == "sub-millisecond TTL"):
		return true
	case c.name == "PutRecord" && in.name == "zero TTL":
		return true
	}
	return false
}

// hostileAlwaysInvalid: calls that are invalid whatever the input (then a
// valid key still yields InvalidArgument).
func hostileAlwaysInvalid(c hostileCall) bool {
	return c.name == "AllowN negative n"
}

// primitiveCalls: the primitives' key-taking entry points (keys as typed by
// users, under the primitives' default prefixes).
func primitiveCalls[C driver.Fenced](t *testing.T, g *syncguard.Guard[C], rs driver.RateStore) []hostileCall {
	lim, err := syncguard.NewRateLimiter(rs, syncguard.RateLimit{Limit: 10, Period: time.Minute, Burst: 10})
	if err != nil {
		t.Fatal(err)
	}
	once, err := syncguard.NewOncePerKey[string](g)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := syncguard.NewFencedWriter(g)
	if err != nil {
		t.Fatal(err)
	}
	return []hostileCall{
		{"RateLimiter.Allow", true, false, false, func(_ driver.Backend, in hostileInput) error {
			_, err := lim.Allow(in.ctx, in.key)
			return err
		}},
		{"OncePerKey.Do", true, false, false, func(_ driver.Backend, in hostileInput) error {
			_, err := once.Do(in.ctx, in.key, func(context.Context) (string, error) { return "done", nil })
			return err
		}},
		{"FencedWriter.Write", true, false, false, func(_ driver.Backend, in hostileInput) error {
			l, err := g.TryAcquire(context.Background(), "fw-holder:"+token())
			if err != nil {
				return fmt.Errorf("setup: %w", err)
			}
			defer l.Close()
			return fw.Write(in.ctx, l, in.key, []byte("v"))
		}},
		{"NewMutex+TryLock", true, false, false, func(_ driver.Backend, in hostileInput) error {
			m, err := syncguard.NewMutex(g, in.key)
			if err != nil {
				return err
			}
			if !m.TryLock() {
				return fmt.Errorf("TryLock of a free key failed")
			}
			m.Unlock()
			return nil
		}},
	}
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func TestHostileInputMemory(t *testing.T) {
	t.Parallel()
	d := memory.New()
	n := hostileRun(t, d, driverCalls)
	n += hostileRun(t, d, guardCalls(syncguard.New(d)))
	n += hostileRun(t, d, primitiveCalls(t, syncguard.New(d), d))
	t.Logf("memory: %d hostile calls checked", n)
}

func TestHostileInputRedis(t *testing.T) {
	t.Parallel()
	c := redisClient(t, []string{redisAddr()})
	d := redisDriver(t, c, "sgrel:"+token())
	n := hostileRun(t, d, driverCalls)
	n += hostileRun(t, d, guardCalls(syncguard.New(d)))
	n += hostileRun(t, d, primitiveCalls(t, syncguard.New(d), d))
	t.Logf("redis: %d hostile calls checked", n)
}

func TestHostileInputPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgDSN()
	schema := pgSchema(t, dsn)
	d := pgDriver(t, pgPool(t, dsn, schema, nil))
	n := hostileRun(t, d, driverCalls)
	n += hostileRun(t, d, guardCalls(syncguard.New(d)))
	n += hostileRun(t, d, primitiveCalls(t, syncguard.New(d), d))
	t.Logf("postgres: %d hostile calls checked", n)
}

// FuzzMemoryDriverInput: arbitrary keys, lock IDs and TTLs never panic the
// memory driver; failures are InvalidArgument.
func FuzzMemoryDriverInput(f *testing.F) {
	f.Add("k", driver.NewLockID(), int64(time.Second))
	f.Add("a\x00b", "\x00", int64(-1))
	f.Add(invalidUTF, strings.Repeat("A", 22), int64(math.MaxInt64))
	d := memory.New()
	f.Fuzz(func(t *testing.T, key, lockID string, ttl int64) {
		ctx := context.Background()
		check := func(op string, err error) {
			if err != nil && driver.CodeOf(err) != driver.InvalidArgument {
				t.Fatalf("%s(%q, %q, %d): %v", op, key, lockID, ttl, err)
			}
		}
		r, err := d.Acquire(ctx, key, time.Duration(ttl))
		check("Acquire", err)
		if err == nil && r.Acquired {
			_, err = d.Release(ctx, "", r.LockID)
			check("Release", err)
		}
		_, err = d.Extend(ctx, "", lockID, time.Duration(ttl))
		check("Extend", err)
		_, err = d.Release(ctx, "", lockID)
		check("Release", err)
		_, err = d.PutRecord(ctx, key, syncguard.Fence(uint64(ttl)), []byte(lockID), 0)
		check("PutRecord", err)
		_, err = d.GetRecord(ctx, key)
		check("GetRecord", err)
	})
}
