package syncguard

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRawLookupHelpers(t *testing.T) {
	info := &LockInfo{KeyHash: HashKey("café"), LockIDHash: HashKey(telemetryTestID), Fence: 4, ExpiresAtMs: 10, AcquiredAtMs: 5}
	rawInfo := &RawLockInfo{LockInfo: *info, Key: "café", LockID: telemetryTestID}
	errDown := NewError(ServiceUnavailable, "down")

	plain := func(info *LockInfo, err error) Backend {
		return &telemetryFakeDriver{info: info, err: err}
	}
	withRaw := func(raw *RawLockInfo, err error) Backend {
		f := &telemetryFakeRawDriver{}
		f.info, f.raw, f.err = info, raw, err
		return f
	}
	decorated := func(b Backend) Backend {
		return WithTelemetry[telemetryFakeCaps](b.(Driver[telemetryFakeCaps]), ObserverFunc(func(Event) {}))
	}

	type lookup func(ctx context.Context, b Backend) (*RawLockInfo, error)
	byKey := func(ctx context.Context, b Backend) (*RawLockInfo, error) { return GetByKeyRaw(ctx, b, "cafe\u0301") }
	byID := func(ctx context.Context, b Backend) (*RawLockInfo, error) { return GetByIDRaw(ctx, b, telemetryTestID) }

	tests := []struct {
		name    string
		backend Backend
		lookup  lookup
		want    *RawLockInfo
		wantErr error
		method  string // driver method expected to be called once
	}{
		{name: "case60/raw-driver/by-key", backend: withRaw(rawInfo, nil), lookup: byKey, want: rawInfo, method: "LookupRawByKey"},
		{name: "case60/raw-driver/by-id", backend: withRaw(rawInfo, nil), lookup: byID, want: rawInfo, method: "LookupRawByID"},
		{name: "case60/raw-driver/absent", backend: withRaw(nil, nil), lookup: byKey, method: "LookupRawByKey"},
		{name: "case60/raw-driver/error", backend: withRaw(nil, errDown), lookup: byID, wantErr: errDown, method: "LookupRawByID"},
		{
			name: "case60/plain-driver/by-key-placeholder", backend: plain(info, nil), lookup: byKey, method: "LookupByKey",
			want: &RawLockInfo{LockInfo: *info, Key: "caf\u00e9", LockID: "[backend does not provide raw lockId]"},
		},
		{
			name: "case60/plain-driver/by-id-placeholder", backend: plain(info, nil), lookup: byID, method: "LookupByID",
			want: &RawLockInfo{LockInfo: *info, Key: "[backend does not provide raw key]", LockID: telemetryTestID},
		},
		{name: "case60/plain-driver/absent-by-key", backend: plain(nil, nil), lookup: byKey, method: "LookupByKey"},
		{name: "case60/plain-driver/absent-by-id", backend: plain(nil, nil), lookup: byID, method: "LookupByID"},
		{name: "case60/plain-driver/error", backend: plain(nil, errDown), lookup: byKey, wantErr: errDown, method: "LookupByKey"},
		{name: "case60/decorated-raw-driver", backend: decorated(withRaw(rawInfo, nil)), lookup: byKey, want: rawInfo, method: "LookupRawByKey"},
		{
			name: "case60/decorated-plain-driver", backend: decorated(plain(info, nil)), lookup: byID, method: "LookupByID",
			want: &RawLockInfo{LockInfo: *info, Key: RawKeyUnavailable, LockID: telemetryTestID},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.lookup(context.Background(), tt.backend)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			fake := telemetryFakeOf(tt.backend)
			if n := fake.count(tt.method); n != 1 {
				t.Errorf("%s called %d times, want 1 (calls: %v)", tt.method, n, fake.calls)
			}
		})
	}
}

// telemetryFakeOf finds the fake under b's decorators.
func telemetryFakeOf(b Backend) *telemetryFakeDriver {
	for {
		switch v := b.(type) {
		case *telemetryFakeDriver:
			return v
		case *telemetryFakeRawDriver:
			return &v.telemetryFakeDriver
		case interface{ Unwrap() Backend }:
			b = v.Unwrap()
		default:
			panic("no fake")
		}
	}
}

func TestRawLookupOwnsAndPassThrough(t *testing.T) {
	info := &LockInfo{Fence: 1}
	errDown := NewError(ServiceUnavailable, "down")
	for _, tt := range []struct {
		name    string
		fake    *telemetryFakeDriver
		want    bool
		wantErr error
	}{
		{name: "case61/owns-held", fake: &telemetryFakeDriver{info: info}, want: true},
		{name: "case61/owns-released", fake: &telemetryFakeDriver{}, want: false},
		{name: "case61/owns-error", fake: &telemetryFakeDriver{info: info, err: errDown}, want: false, wantErr: errDown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Owns(context.Background(), tt.fake, telemetryTestID)
			if got != tt.want || err != tt.wantErr {
				t.Errorf("Owns = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
			if tt.fake.lastArg != telemetryTestID || tt.fake.count("LookupByID") != 1 {
				t.Errorf("LookupByID got %q, calls %v", tt.fake.lastArg, tt.fake.calls)
			}
		})
	}

	t.Run("case61/get-helpers-pass-through", func(t *testing.T) {
		type ctxKey struct{}
		ctx := context.WithValue(context.Background(), ctxKey{}, "v")
		fake := &telemetryFakeDriver{info: info}
		if got, err := GetByKey(ctx, fake, "cafe\u0301"); got != info || err != nil {
			t.Errorf("GetByKey = %v, %v", got, err)
		}
		if fake.lastCtx != ctx || fake.lastArg != "cafe\u0301" || fake.count("LookupByKey") != 1 {
			t.Errorf("GetByKey passed ctx %v, key %q", fake.lastCtx, fake.lastArg)
		}
		if got, err := GetByID(ctx, fake, telemetryOtherID); got != info || err != nil {
			t.Errorf("GetByID = %v, %v", got, err)
		}
		if fake.lastCtx != ctx || fake.lastArg != telemetryOtherID || fake.count("LookupByID") != 1 {
			t.Errorf("GetByID passed ctx %v, id %q", fake.lastCtx, fake.lastArg)
		}
	})
}
