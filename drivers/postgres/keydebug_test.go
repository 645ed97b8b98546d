package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard/driver"
)

// TestFenceCounterKeepsNoRawKey is security finding 2: the fence counter
// row outlives the lock, so its debugging column holds HashKey of the key,
// never the key (often a user's e-mail or an idempotency key), on both
// the acquire and the hand-off paths.
func TestFenceCounterKeepsNoRawKey(t *testing.T) {
	t.Parallel()
	db, d := newTestDriver(t)
	ctx := context.Background()
	key := "user:alice@example.com:caf\u00e9"
	r, err := d.Acquire(ctx, key, 30*time.Second)
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire = %+v, %v", r, err)
	}
	if _, err := d.Release(ctx, "", r.LockID); err != nil {
		t.Fatal(err)
	}
	rows, err := db.pool.Query(ctx, `SELECT key_debug FROM syncguard_fence_counters`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{driver.HashKey(key)}, got); diff != "" {
		t.Errorf("key_debug (-want +got):\n%s", diff)
	}
}
