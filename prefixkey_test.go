package syncguard_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/drivertest"
)

// TestPrimitivesAcceptEveryValidKey: OncePerKey, FencedWriter and a
// prefixed RateLimiter accept every key the key rule accepts, also when the
// prefixed name would exceed MaxKeyBytes (it is then kept under the prefix
// and a digest); long keys that differ only at the end stay distinct; short
// keys keep the names earlier releases used (prefix + key).
func TestPrimitivesAcceptEveryValidKey(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			g := d.NewGuard()
			run := strings.Repeat("r", 8) + time.Now().Format("150405.000000000")
			long := func(end string) string { // 512 bytes, NUL included
				k := "long\x00" + run + ":"
				return k + strings.Repeat("x", driver.MaxKeyBytes-len(k)-len(end)) + end
			}
			a, b := long("a"), long("b")

			once, err := syncguard.NewOncePerKey[string](g)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{a, b, a} {
				got, err := once.Do(ctx, k, func(context.Context) (string, error) { return k[len(k)-1:], nil })
				if err != nil || got != k[len(k)-1:] {
					t.Errorf("OncePerKey.Do(512-byte key ending %q) = %q, %v; want its own result", k[len(k)-1:], got, err)
				}
			}
			short := "short:" + run
			if _, err := once.Do(ctx, short, func(context.Context) (string, error) { return "s", nil }); err != nil {
				t.Fatal(err)
			}
			if rec, err := d.Driver.GetRecord(ctx, "once:"+short); err != nil || rec == nil {
				t.Errorf("record of a short key under %q = %v, %v; want the unchanged name", "once:"+short, rec, err)
			}

			w, err := syncguard.NewFencedWriter(g)
			if err != nil {
				t.Fatal(err)
			}
			l, err := g.TryAcquire(ctx, "holder:"+run)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			for _, k := range []string{a, b} {
				if err := w.Write(ctx, l, k, []byte(k[len(k)-1:])); err != nil {
					t.Errorf("FencedWriter.Write(512-byte resource): %v", err)
				}
			}
			for _, k := range []string{a, b} {
				if rec, err := w.Read(ctx, k); err != nil || rec == nil || string(rec.Value) != k[len(k)-1:] {
					t.Errorf("FencedWriter.Read(512-byte resource ending %q) = %+v, %v; want its own value", k[len(k)-1:], rec, err)
				}
			}

			lim, err := syncguard.NewRateLimiter(d.Driver, syncguard.RateLimit{Limit: 1, Period: time.Hour, Burst: 1},
				syncguard.WithPrefix("api:"))
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{a, b} {
				if ok, err := lim.Allow(ctx, k); err != nil || !ok {
					t.Errorf("first Allow(512-byte key ending %q) = %v, %v; want allowed", k[len(k)-1:], ok, err)
				}
			}
			if ok, err := lim.Allow(ctx, a); err != nil || ok {
				t.Errorf("second Allow(512-byte key) = %v, %v; want refused", ok, err)
			}
		})
	}
}

// TestPrimitivePrefixValidation: a prefix must be valid UTF-8 and leave room
// for every key; the error names the option.
func TestPrimitivePrefixValidation(t *testing.T) {
	t.Parallel()
	d := drivertest.Drivers(t)[0]
	g := d.NewGuard()
	long := strings.Repeat("p", 490)
	errs := map[string]error{}
	_, errs["NewOncePerKey"] = syncguard.NewOncePerKey[int](g, syncguard.WithPrefix(long))
	_, errs["NewFencedWriter"] = syncguard.NewFencedWriter(g, syncguard.WithPrefix("\xff"))
	_, errs["NewRateLimiter"] = syncguard.NewRateLimiter(d.Driver, syncguard.RateLimit{Limit: 1, Period: time.Second, Burst: 1}, syncguard.WithPrefix(long))
	for ctor, err := range errs {
		var le *syncguard.LockError
		if !errors.As(err, &le) || le.Code != driver.InvalidArgument || !strings.HasPrefix(le.Message, "syncguard.WithPrefix: ") {
			t.Errorf("%s: %v; want InvalidArgument naming the option", ctor, err)
		}
	}
	if _, err := syncguard.NewOncePerKey[int](g, syncguard.WithPrefix(long[:489])); err != nil {
		t.Errorf("WithPrefix of 489 bytes: %v", err)
	}
}
