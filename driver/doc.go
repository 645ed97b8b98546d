// Package driver is what a SyncGuard driver implements and the helpers
// drivers share; applications use package syncguard instead.
//
// A driver is a [LockStore] with a capability type ([Driver]); a fencing
// driver also stores fenced records ([RecordStore]), and most keep rate
// state ([RateStore]), permits ([PermitStore]) and wake waiters
// ([ReleaseWatcher], [HandoffWatcher], [PermitWatcher]). syncguard.Guard validates keys, TTLs, lock IDs and
// contexts before it calls a driver. docs/contract.md states what every
// operation must do, and package conformance checks a driver against it.
package driver
