package memory

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// BenchmarkMemoryAcquireRelease measures one acquire+release pair on one
// key, serially.
func BenchmarkMemoryAcquireRelease(b *testing.B) {
	d := New()
	b.ReportAllocs()
	for b.Loop() {
		r, err := d.Acquire(bg, "bench:serial", 30*time.Second)
		if err != nil || !r.Acquired {
			b.Fatalf("Acquire = %+v, %v", r, err)
		}
		if rel, err := d.Release(bg, "", r.LockID); err != nil || !rel.OK {
			b.Fatalf("Release = %+v, %v", rel, err)
		}
	}
}

// BenchmarkMemoryAcquireReleaseParallel measures acquire+release pairs from
// GOMAXPROCS goroutines, each on its own key.
func BenchmarkMemoryAcquireReleaseParallel(b *testing.B) {
	d := New()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := "bench:parallel:" + strconv.FormatInt(next.Add(1), 10)
		for pb.Next() {
			r, err := d.Acquire(bg, key, 30*time.Second)
			if err != nil || !r.Acquired {
				b.Errorf("Acquire = %+v, %v", r, err)
				return
			}
			if rel, err := d.Release(bg, "", r.LockID); err != nil || !rel.OK {
				b.Errorf("Release = %+v, %v", rel, err)
				return
			}
		}
	})
}

// BenchmarkMemoryContended measures a refused acquisition of a held key.
func BenchmarkMemoryContended(b *testing.B) {
	d := New()
	if _, err := d.Acquire(bg, "bench:held", time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := d.Acquire(bg, "bench:held", time.Second); r.Acquired {
			b.Fatal("acquired a held key")
		}
	}
}

// BenchmarkMemoryAllowN measures one GCRA decision.
func BenchmarkMemoryAllowN(b *testing.B) {
	d := New()
	lim := driver.RateLimit{Limit: 1 << 30, Period: time.Hour, Burst: 1 << 30}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.AllowN(bg, "bench:rate", lim, 1); err != nil {
			b.Fatal(err)
		}
	}
}
