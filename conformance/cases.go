package conformance

import (
	"slices"
	"strconv"
	"strings"

	"github.com/syncguard/syncguard/driver"
)

// testCase is one registered case.
type testCase[C driver.Capabilities] struct {
	// id is the subtest name: "caseNNN_title" for catalogue cases, "Rnn_…"
	// (fenced records), "Gnn_…" (GCRA rate) and "Wnn_…" (wake-up) for the
	// project's own cases (docs/contract.md#conformance-cases), "Knn_…" for the key rule.
	id string
	fn func(c *tc[C])
	// alone: run before the concurrent cases, one at a time (cases that
	// measure process-wide state).
	alone bool
}

// registry lists every implemented case, in catalogue order.
func registry[C driver.Capabilities]() []testCase[C] {
	return []testCase[C]{
		// A. Lifecycle (lifecycle.go)
		{id: "case001_basic_lifecycle", fn: case001[C]},
		{id: "case002_fence_on_acquire", fn: case002[C]},
		{id: "case003_independent_keys_in_parallel", fn: case003[C]},
		{id: "case004_double_release", fn: case004[C]},
		{id: "case005_release_of_unknown_id", fn: case005[C]},
		{id: "case006_rapid_cycles", fn: case006[C]},
		{id: "case007_owner_may_extend_and_release", fn: case007[C]},
		{id: "case008_normalised_keys_address_one_lock", fn: case008[C]},
		// B. Contention (contention.go)
		{id: "case009_held_key_is_contended", fn: case009[C]},
		{id: "case010_contention_writes_nothing", fn: case010[C]},
		{id: "case011_distinct_keys_do_not_serialise", fn: case011[C]},
		{id: "case012_reacquire_after_release", fn: case012[C]},
		{id: "case013_waiters_fail_then_succeed_after_expiry", fn: case013[C]},
		{id: "case014_single_shot_stress", fn: case014[C]},
		{id: "case015_contention_is_never_an_error", fn: case015[C]},
		// C. Expiry, tolerance and extend (expiry.go)
		{id: "case016_auto_expiry", fn: case016[C]},
		{id: "case017_extend_keeps_the_lock", fn: case017[C]},
		{id: "case018_extend_keeps_the_lock_short", fn: case018[C]},
		{id: "case019_no_resurrection", fn: case019[C]},
		{id: "case020_expired_key_is_reacquirable", fn: case020[C]},
		{id: "case021_repeated_extends", fn: case021[C]},
		{id: "case022_short_then_long_ttl", fn: case022[C]},
		{id: "case023_tolerance_window_closes", fn: case023[C]},
		{id: "case024_extend_resets_not_adds", fn: case024[C]},
		{id: "case025_authoritative_expiry", fn: case025[C]},
		{id: "case026_tolerance_boundary", fn: case026[C]},
		// D. Ownership (ownership.go)
		{id: "case029_release_with_foreign_id", fn: case029[C]},
		{id: "case030_extend_with_foreign_id", fn: case030[C]},
		{id: "case031_cross_key_isolation", fn: case031[C]},
		{id: "case032_stale_holder_after_takeover", fn: case032[C]},
		{id: "case033_concurrent_foreign_releases", fn: case033[C]},
		{id: "case034_foreign_release_after_extend", fn: case034[C]},
		{id: "case035_at_most_once_release", fn: case035[C]},
		// E. Fence monotonicity (fence.go)
		{id: "case036_fence_format", fn: case036[C]},
		{id: "case037_sequential_monotonicity", fn: case037[C]},
		{id: "case038_per_key_monotonicity", fn: case038[C]},
		{id: "case039_independent_counters", fn: case039[C]},
		{id: "case040_counter_survives_release_and_expiry", fn: case040[C]},
		{id: "case041_counter_survives_cleanup", fn: case041[C]},
		{id: "case041_fix_cleanup_in_islocked_keeps_counter", fn: case041Fix[C]},
		{id: "case042_many_cleanup_cycles", fn: case042[C]},
		{id: "case043_first_fence", fn: case043[C]},
		{id: "case044_absent_counter_race", fn: case044[C]},
		{id: "case045_fence_overflow_and_warning", fn: case045[C]},
		{id: "F01_time_floor_after_a_lost_counter", fn: f01[C]},
		// F. Lookup and diagnostics (lookup.go)
		{id: "case048_lookup_by_key_is_sanitised", fn: case048[C]},
		{id: "case049_lookup_by_id_is_sanitised", fn: case049[C]},
		{id: "case050_absent_key_and_id", fn: case050[C]},
		{id: "case051_expired_is_nil_in_both_modes", fn: case051[C]},
		{id: "case052_expired_by_id_short_ttl", fn: case052[C]},
		{id: "case053_active_lock_by_id", fn: case053[C]},
		{id: "case054_lookup_validates_keys", fn: case054[C]},
		{id: "case055_lookup_validates_ids", fn: case055[C]},
		{id: "case056_concurrent_lookups_agree", fn: case056[C]},
		{id: "case057_lookups_across_keys", fn: case057[C]},
		{id: "case058_hash_provenance", fn: case058[C]},
		{id: "case059_lookup_is_read_only", fn: case059[C]},
		{id: "case060_raw_lookups", fn: case060[C]},
		{id: "case061_owns_and_passthrough_helpers", fn: case061[C]},
		// G. Validation, keys and errors (validation.go)
		{id: "case062_empty_key", fn: case062[C]},
		{id: "case063_oversize_key", fn: case063[C]},
		{id: "case064_size_boundary", fn: case064[C]},
		{id: "case066_empty_lockid", fn: case066[C]},
		{id: "case067_malformed_lockids", fn: case067[C]},
		{id: "case068_well_formed_lockids", fn: case068[C]},
		{id: "case070_ttl_validation", fn: case070[C]},
		{id: "case071_absent_resources_are_results", fn: case071[C]},
		{id: "case072_special_characters", fn: case072[C]},
		{id: "case073_unicode_keys", fn: case073[C]},
		{id: "case074_error_storm", fn: case074[C]},
		{id: "case075_uniform_error_type", fn: case075[C]},
		// H. Cancellation (cancel.go)
		{id: "case092_pre_cancelled_context", fn: case092[C]},
		{id: "case093_live_context", fn: case093[C]},
		{id: "case094_mid_flight_cancel", fn: case094[C]},
		{id: "case095_shared_context", fn: case095[C]},
		{id: "case096_deadline", fn: case096[C]},
		{id: "case097_cancelled_acquire_leaves_no_lock", fn: case097[C]},
		// I, J. Guard: the Lock helper and leases (guard.go)
		{id: "case112_fn_errors", fn: case112[C]},
		{id: "case115_callback_runs_under_the_lock", fn: case115[C]},
		{id: "case116_return_values", fn: case116[C]},
		{id: "case117_acquisition_timeout_end_to_end", fn: case117[C]},
		{id: "case118_retry_end_to_end", fn: case118[C]},
		{id: "case119_mutual_exclusion_ordering", fn: case119[C]},
		{id: "case120_sequential_and_parallel_use", fn: case120[C]},
		{id: "case123_release_despite_caller_cancellation", fn: case123[C]},
		{id: "case124_lease_passed_to_fn_and_loss_surfaced", fn: case124[C]},
		{id: "case140_scope_exit_releases", fn: case140[C]},
		{id: "case141_manual_ops_through_the_handle", fn: case141[C]},
		{id: "case142_extend_through_the_handle", fn: case142[C]},
		{id: "case143_contended_handle_does_not_release_the_holder", fn: case143[C]},
		{id: "case144_nested_and_parallel_scopes", fn: case144[C]},
		// L. Cross-backend consistency (xbackend.go)
		{id: "case152_same_matrix_everywhere", fn: case152[C]},
		{id: "case153_capabilities", fn: case153[C]},
		// M. Concurrency (concurrency.go)
		{id: "case155_single_attempt_workers", fn: case155[C]},
		{id: "case156_no_lost_updates", fn: case156[C]},
		{id: "case157_data_integrity", fn: case157[C]},
		{id: "case158_stress_with_retries", fn: case158[C]},
		{id: "case159_exclusion_invariant", fn: case159[C]},
		// Fenced records, docs/contract.md#fenced-records (records.go)
		{id: "R01_put_into_empty", fn: r01[C]},
		{id: "R02_same_fence_again", fn: r02[C]},
		{id: "R03_older_fence_refused", fn: r03[C]},
		{id: "R04_newer_fence_accepted", fn: r04[C]},
		{id: "R05_get_absent", fn: r05[C]},
		{id: "R06_ttl_expiry", fn: r06[C]},
		{id: "R07_ttl_zero_never_expires", fn: r07[C]},
		{id: "R08_value_is_copied", fn: r08[C]},
		{id: "R09_names_validated_like_keys", fn: r09[C]},
		{id: "R10_records_and_locks_are_separate", fn: r10[C]},
		{id: "R11_concurrent_puts_keep_newest", fn: r11[C]},
		{id: "R12_delete_needs_current_fence", fn: r12[C]},
		{id: "R13_context_errors", fn: r13[C]},
		// Rate, docs/contract.md#rate-gcra (rate.go)
		{id: "G01_burst_then_denied", fn: g01[C]},
		{id: "G02_zero_cost_inspects", fn: g02[C]},
		{id: "G03_allowed_after_retry_after", fn: g03[C]},
		{id: "G04_reset_restores_burst", fn: g04[C]},
		{id: "G05_cost_above_burst_never_allowed", fn: g05[C]},
		{id: "G06_concurrent_requests_are_atomic", fn: g06[C]},
		{id: "G07_invalid_limits", fn: g07[C]},
		{id: "G08_context_errors", fn: g08[C]},
		// Release watching and hand-off, docs/contract.md#release-watching and #hand-off (wakeup.go, handoff.go, turns.go)
		{id: "W01_release_signals_watcher", fn: w01[C]},
		{id: "W02_stop_is_idempotent_and_leak_free", fn: w02[C], alone: true},
		{id: "W03_guard_wakes_on_release", fn: w03[C]},
		{id: "W04_guards_giving_up_leave_no_lock", fn: w04[C], alone: true},
		{id: "W05_handoff_is_first_come_first_served", fn: w05[C], alone: true},
		{id: "W06_warm_waiter_queues_behind_subscribed_one", fn: w06[C], alone: true},
		{id: "W07_release_grants_the_head_of_the_queue", fn: w07[C]},
		{id: "W08_leaving_waiter_hands_its_grant_on", fn: w08[C]},
		{id: "W09_unsubscribed_waiter_keeps_its_turn", fn: w09[C], alone: true},
		{id: "W10_unsubscribed_waiter_queues_and_claims", fn: w10[C]},
		// Permits, docs/contract.md#permits (permits.go)
		{id: "P01_permits_up_to_the_limit", fn: p01[C]},
		{id: "P02_release_frees_a_permit", fn: p02[C]},
		{id: "P03_fences_strictly_increase", fn: p03[C]},
		{id: "P04_expired_permit_returns", fn: p04[C]},
		{id: "P05_extend_never_recreates", fn: p05[C]},
		{id: "P06_smallest_limit_wins", fn: p06[C]},
		{id: "P07_capacity_never_exceeded", fn: p07[C]},
		{id: "P08_permits_locks_and_records_are_separate", fn: p08[C]},
		{id: "P09_invalid_input", fn: p09[C]},
		{id: "P10_context_errors", fn: p10[C]},
		{id: "P11_semaphore_end_to_end", fn: p11[C]},
		{id: "P12_waiters_wake_on_release", fn: p12[C]},
		// Leader election, docs/contract.md#leader-election (election.go)
		{id: "E01_no_two_leaders_terms_increase", fn: e01[C]},
		{id: "E02_observers_see_every_leader_in_order", fn: e02[C]},
		{id: "E03_stopped_leader_replaced_after_ttl", fn: e03[C]},
		// The one key rule (keys.go)
		{id: "K01_every_valid_key_works", fn: k01[C]},
	}
}

// idCaps instantiates the registry for CaseIDs.
type idCaps struct{ driver.WithFencing }

func (idCaps) Name() string { return "ids" }

// CaseIDs returns the IDs (subtest names) of every case [Run] runs, in
// catalogue order: "caseNNN_…" for the numbered catalogue cases (case 41
// has two, its [FIX] variant being "case041_fix_…"), "Rnn_…" for fenced
// records, "Gnn_…" for GCRA rate, "Pnn_…" for permits, "Enn_…" for leader
// election, "Wnn_…" for wake-up, "Fnn_…" for fences and "Knn_…" for the
// key rule (every key [driver.NormalizeKey] accepts works everywhere).
func CaseIDs() []string {
	reg := registry[idCaps]()
	ids := make([]string, len(reg))
	for i, c := range reg {
		ids[i] = c.id
	}
	return ids
}

// catalogueAll lists the numbered cases of docs/contract.md#conformance-cases (the catalogue's [all] cases)
// (including those also tagged [spec], [FIX] or [unit]). Case 26 is tagged
// [pg][fs][redis] and is implemented too (through RawLockWriter).
var catalogueAll = []int{
	1, 2, 3, 4, 5, 6, 7, 8,
	9, 10, 11, 12, 13, 14, 15,
	16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
	29, 30, 31, 32, 33, 34, 35,
	36, 37, 38, 39, 40, 41, 42, 43, 44, 45,
	48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
	62, 63, 64, 66, 67, 68, 70, 71, 72, 73, 74, 75,
	92, 93, 94, 95, 96, 97,
	112, 115, 116, 117, 118, 119, 120, 123, 124,
	140, 141, 142, 143, 144,
	152, 153,
	155, 156, 157, 158, 159,
}

// caseNumber returns N of an ID "caseNNN_…", or 0.
func caseNumber(id string) int {
	rest, ok := strings.CutPrefix(id, "case")
	if !ok || len(rest) < 4 || rest[3] != '_' {
		return 0
	}
	n, err := strconv.Atoi(rest[:3])
	if err != nil {
		return 0
	}
	return n
}

// implementedNumbers returns the sorted catalogue numbers with at least one
// implemented case.
func implementedNumbers() []int {
	var nums []int
	for _, id := range CaseIDs() {
		if n := caseNumber(id); n > 0 && !slices.Contains(nums, n) {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums
}
