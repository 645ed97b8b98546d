package redis

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// mustNames returns the Redis keys of key on d, or fails t.
func mustNames(t testing.TB, d *Driver, key string) keyNames {
	t.Helper()
	kn, err := d.names(key)
	if err != nil {
		t.Fatal(err)
	}
	return kn
}

// TestPermitStorage checks the permit hash: one key per user key, apart
// from the lock hash; an expiry that covers the latest live permit; expired
// permits pruned by the next grant; a true summary; and, once the last
// permit is gone, only the counter, with an expiry no longer than the
// counter's keep time.
func TestPermitStorage(t *testing.T) {
	forModes(t, func(t *testing.T, d *Driver) {
		ctx := context.Background()
		c := d.Client()
		kn := mustNames(t, d, "sem-storage")
		sem := kn.sem()
		// asInt runs cmd, whose reply is an integer.
		asInt := func(cmd rueidis.Completed) int64 {
			t.Helper()
			n, err := c.Do(ctx, cmd).AsInt64()
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		hlen := func() int64 { t.Helper(); return asInt(c.B().Hlen().Key(sem).Build()) }
		pttl := func() int64 { t.Helper(); return asInt(c.B().Pttl().Key(sem).Build()) }

		short, err := d.AcquirePermit(ctx, "sem-storage", 3, 200*time.Millisecond)
		if err != nil || !short.Acquired {
			t.Fatalf("AcquirePermit = %+v, %v", short, err)
		}
		long, err := d.AcquirePermit(ctx, "sem-storage", 3, time.Minute)
		if err != nil || !long.Acquired {
			t.Fatalf("AcquirePermit = %+v, %v", long, err)
		}
		if h := readSem(t, c, sem); len(h.permits) != 2 {
			t.Fatalf("%d permits stored; want 2", len(h.permits))
		} else {
			checkSummary(t, h)
		}
		if ms := pttl(); ms < 60_000 || ms > 60_000+driver.ToleranceMs {
			t.Errorf("PTTL = %d ms; want the minute-long permit's TTL plus up to the tolerance", ms)
		}
		if n, err := c.Do(ctx, c.B().Exists().Key(kn.lock()).Build()).AsInt64(); err != nil || n != 0 {
			t.Errorf("EXISTS lock hash = %d, %v; want 0 (permits live apart from locks)", n, err)
		}

		time.Sleep(200*time.Millisecond + driver.Tolerance + 50*time.Millisecond)
		third, err := d.AcquirePermit(ctx, "sem-storage", 3, time.Second)
		if err != nil || !third.Acquired {
			t.Fatalf("AcquirePermit = %+v, %v", third, err)
		}
		if h := readSem(t, c, sem); len(h.permits) != 2 { // the expired permit was pruned by the grant
			t.Errorf("%d permits stored after a grant past an expiry; want 2", len(h.permits))
		} else {
			checkSummary(t, h)
		}
		if r, err := d.ReleasePermit(ctx, "sem-storage", short.LockID); err != nil || r.OK || r.Detail != driver.DetailNotFound {
			t.Errorf("ReleasePermit of the pruned permit = %+v, %v; want not-found", r, err)
		}

		for _, id := range []string{long.LockID, third.LockID} {
			if r, err := d.ReleasePermit(ctx, "sem-storage", id); err != nil || !r.OK {
				t.Fatalf("ReleasePermit = %+v, %v", r, err)
			}
		}
		nowUs := time.Now().UnixMicro()
		keep := driver.FenceKeepMs(third.Fence, nowUs)
		ms := pttl()
		switch {
		case ms == -2: // already deleted: the floor had passed the counter
		case ms < 0 || ms > keep+100:
			t.Errorf("PTTL of the empty permit hash = %d ms; want at most the counter's keep time %d ms", ms, keep)
		}
		if n := hlen(); n > 1 {
			t.Errorf("HLEN of the empty permit hash = %d; want only the counter (no summary)", n)
		}

		// The counter continues: the next fence is greater.
		next, err := d.AcquirePermit(ctx, "sem-storage", 3, time.Second)
		if err != nil || !next.Acquired || next.Fence <= third.Fence {
			t.Errorf("AcquirePermit after the releases = %+v, %v; want a fence > %v", next, err, third.Fence)
		}
	})
}

// TestPermitCounterOutlivesPermits: a counter far ahead of the fence floor
// is kept past its permits' expiry, so a later permit still gets a greater
// fence; the lock counter of the key is untouched.
func TestPermitCounterOutlivesPermits(t *testing.T) {
	forModes(t, func(t *testing.T, d *Driver) {
		ctx := context.Background()
		c := d.Client()
		kn := mustNames(t, d, "sem-ahead")
		// A counter 3 s ahead of the floor, as after a clock step back.
		ahead := int64(driver.FenceFloor(time.Now().UnixMicro())) + 3000*driver.FencePerMs
		if err := c.Do(ctx, c.B().Hset().Key(kn.sem()).FieldValue().FieldValue("f", formatInt(ahead)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		p, err := d.AcquirePermit(ctx, "sem-ahead", 1, 100*time.Millisecond)
		if err != nil || !p.Acquired || int64(p.Fence) != ahead+1 {
			t.Fatalf("AcquirePermit = %+v, %v; want fence %d", p, err, ahead+1)
		}
		ms, err := c.Do(ctx, c.B().Pttl().Key(kn.sem()).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(3000 + driver.FenceMarginMs - 200); ms < want {
			t.Errorf("PTTL = %d ms; want ≥ %d (the counter's keep time, not the permit's TTL)", ms, want)
		}
		if r, err := d.ReleasePermit(ctx, "sem-ahead", p.LockID); err != nil || !r.OK {
			t.Fatalf("ReleasePermit = %+v, %v", r, err)
		}
		q, err := d.AcquirePermit(ctx, "sem-ahead", 1, time.Second)
		if err != nil || !q.Acquired || q.Fence <= p.Fence {
			t.Errorf("AcquirePermit = %+v, %v; want a fence > %v", q, err, p.Fence)
		}
		if n, err := c.Do(ctx, c.B().Exists().Key(kn.lock()).Build()).AsInt64(); err != nil || n != 0 {
			t.Errorf("EXISTS lock hash = %d, %v; want 0", n, err)
		}
	})
}
