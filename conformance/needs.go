package conformance

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// need is what a case needs of the driver beyond the lock contract; a case
// whose needs the driver's capabilities do not meet is skipped, so drivers
// of every capability type run the same suite.
type need uint8

const (
	// needFencing: fences (the capability type is driver.Fenced) and the
	// records and rate stores of a driver.Backend.
	needFencing need = 1 << iota
	// needIndex: a lock-ID index (keyless Release and Extend, LookupByID).
	needIndex
	// needHandoff: first-come-first-served hand-off (driver.FairHandoff).
	needHandoff
	// needRate: a rate store (driver.RateStore).
	needRate
	// needPermits: fences and a permit store (driver.PermitStore).
	needPermits
)

// needsOf returns what the case id needs beyond the lock contract.
func needsOf(id string) need {
	switch id[0] {
	case 'R': // fenced records
		return needFencing
	case 'G': // GCRA rate
		return needRate
	case 'P': // permits
		return needPermits
	case 'E': // leader election: fences and records
		return needFencing
	}
	return caseNeeds[id]
}

// caseNeeds lists the other cases that check fences or use the lock-ID
// index (keyless calls, LookupByID, foreign lock IDs).
var caseNeeds = map[string]need{
	"case002_fence_on_acquire":                      needFencing,
	"case005_release_of_unknown_id":                 needIndex,
	"case010_contention_writes_nothing":             needFencing,
	"case025_authoritative_expiry":                  needIndex,
	"case029_release_with_foreign_id":               needIndex,
	"case030_extend_with_foreign_id":                needIndex,
	"case033_concurrent_foreign_releases":           needIndex,
	"case034_foreign_release_after_extend":          needIndex,
	"case036_fence_format":                          needFencing,
	"case037_sequential_monotonicity":               needFencing,
	"case038_per_key_monotonicity":                  needFencing,
	"case039_independent_counters":                  needFencing,
	"case043_first_fence":                           needFencing,
	"case044_absent_counter_race":                   needFencing,
	"case049_lookup_by_id_is_sanitised":             needIndex,
	"case050_absent_key_and_id":                     needIndex,
	"case053_active_lock_by_id":                     needIndex,
	"case058_hash_provenance":                       needIndex,
	"case059_lookup_is_read_only":                   needIndex,
	"case060_raw_lookups":                           needIndex,
	"case061_owns_and_passthrough_helpers":          needIndex,
	"case068_well_formed_lockids":                   needIndex,
	"case071_absent_resources_are_results":          needIndex,
	"case072_special_characters":                    needIndex,
	"case092_pre_cancelled_context":                 needIndex,
	"case096_deadline":                              needIndex,
	"case152_same_matrix_everywhere":                needFencing | needIndex,
	"K01_every_valid_key_works":                     needIndex,
	"W04_guards_giving_up_leave_no_lock":            needFencing,
	"case070_ttl_validation":                        needIndex,
	"case052_expired_by_id_short_ttl":               needIndex,
	"case040_counter_survives_release_and_expiry":   needFencing,
	"case041_counter_survives_cleanup":              needFencing,
	"case051_expired_is_nil_in_both_modes":          needIndex,
	"case124_lease_passed_to_fn_and_loss_surfaced":  needIndex,
	"case032_stale_holder_after_takeover":           needIndex,
	"case159_exclusion_invariant":                   needFencing,
	"case042_many_cleanup_cycles":                   needFencing,
	"case041_fix_cleanup_in_islocked_keeps_counter": needFencing,
	"case045_fence_overflow_and_warning":            needFencing,
	"F01_time_floor_after_a_lost_counter":           needFencing,
}

// missing says which need the driver does not meet, or "".
func (n need) missing(info driver.Info, backend, rate, permits, indexed bool) string {
	switch {
	case n&needPermits != 0 && (!info.Fencing || !permits):
		return "keeps no permits (it is no fencing driver.PermitStore)"
	case n&needFencing != 0 && (!info.Fencing || !backend):
		return "has no fencing (its capability type is not driver.Fenced)"
	case n&needIndex != 0 && !indexed:
		return "keeps no lock-ID index (keyless Release/Extend, LookupByID)"
	case n&needRate != 0 && !rate:
		return "keeps no rate state (it is no driver.RateStore)"
	case n&needHandoff != 0 && !info.FairHandoff:
		return "has no fair hand-off (its capability type is not driver.FairHandoff)"
	}
	return ""
}

// hasIndex reports whether d looks locks up by lock ID: a driver without
// an index answers LookupByID with InvalidArgument, as the contract says.
func hasIndex[C driver.Capabilities](t *testing.T, d driver.Driver[C]) bool {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := d.LookupByID(ctx, driver.NewLockID())
	return driver.CodeOf(err) != driver.InvalidArgument
}

// keyedDriver passes the key of each lock it acquired to Release and
// Extend when the caller passes "" (the suite's driver-level cases release
// by lock ID), for drivers without a lock-ID index.
type keyedDriver[C driver.Capabilities] struct {
	driver.Driver[C]
	keys sync.Map // lock ID → key
}

func (k *keyedDriver[C]) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	r, err := k.Driver.Acquire(ctx, key, ttl)
	if err == nil && r.Acquired {
		k.keys.Store(r.LockID, key)
	}
	return r, err
}

func (k *keyedDriver[C]) keyOf(key, lockID string) string {
	if key == "" {
		if v, ok := k.keys.Load(lockID); ok {
			return v.(string)
		}
	}
	return key
}

func (k *keyedDriver[C]) Release(ctx context.Context, key, lockID string) (driver.ReleaseResult, error) {
	return k.Driver.Release(ctx, k.keyOf(key, lockID), lockID)
}

func (k *keyedDriver[C]) Extend(ctx context.Context, key, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	return k.Driver.Extend(ctx, k.keyOf(key, lockID), lockID, ttl)
}
