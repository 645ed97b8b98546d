package conformance

import (
	"fmt"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncguard/syncguard/driver"
)

// L. Cross-backend consistency: cases 152 and 153.

// outcome renders a call's outcome as a backend-independent word.
func outcome(ok bool, err error) string {
	switch {
	case err != nil:
		return "error:" + driver.CodeOf(err).String()
	case ok:
		return "true"
	default:
		return "false"
	}
}

// case152: every driver produces the same transcript for one fixed
// sequence of operations. (The whole suite is the matrix; this case pins a
// compact transcript so that a difference shows up as one readable diff.)
func case152[C driver.Capabilities](c *tc[C]) {
	k := c.key("matrix")
	foreign := foreignID("ZZZZZZZZZZZZZZZZZZZZZZ")
	var got []string
	add := func(step string, ok bool, err error) { got = append(got, step+"="+outcome(ok, err)) }

	r1, err := c.d.Acquire(c.ctx, k, 30*time.Second)
	add("acquire", r1.Acquired, err)
	r, err := c.d.Acquire(c.ctx, k, 30*time.Second)
	add("acquire-held", r.Acquired, err)
	got = append(got, "reason="+r.Reason)
	v, err := c.d.IsLocked(c.ctx, k)
	add("isLocked", v, err)
	e, err := c.d.Extend(c.ctx, "", foreign, 30*time.Second)
	add("extend-foreign", e.OK, err)
	rr, err := c.d.Release(c.ctx, "", foreign)
	add("release-foreign", rr.OK, err)
	info, err := c.d.LookupByKey(c.ctx, k)
	add("lookupByKey", info != nil, err)
	info, err = c.d.LookupByID(c.ctx, r1.LockID)
	add("lookupByID", info != nil, err)
	e, err = c.d.Extend(c.ctx, "", r1.LockID, 30*time.Second)
	add("extend", e.OK, err)
	rr, err = c.d.Release(c.ctx, "", r1.LockID)
	add("release", rr.OK, err)
	rr, err = c.d.Release(c.ctx, "", r1.LockID)
	add("release-again", rr.OK, err)
	e, err = c.d.Extend(c.ctx, "", r1.LockID, 30*time.Second)
	add("extend-released", e.OK, err)
	v, err = c.d.IsLocked(c.ctx, k)
	add("isLocked-released", v, err)
	info, err = c.d.LookupByKey(c.ctx, k)
	add("lookupByKey-released", info != nil, err)
	_, err = c.d.Acquire(c.ctx, "", 30*time.Second)
	add("acquire-empty-key", false, err)
	_, err = c.d.Acquire(c.ctx, k, 0)
	add("acquire-zero-ttl", false, err)
	_, err = c.d.Release(c.ctx, "", "not-an-id")
	add("release-bad-id", false, err)
	r2, err := c.d.Acquire(c.ctx, k, 30*time.Second)
	add("reacquire", r2.Acquired, err)
	got = append(got, fmt.Sprintf("fence-increases=%t", r2.Fence > r1.Fence))
	rr, err = c.d.Release(c.ctx, "", r2.LockID)
	add("release-reacquired", rr.OK, err)

	want := []string{
		"acquire=true",
		"acquire-held=false",
		"reason=locked",
		"isLocked=true",
		"extend-foreign=false",
		"release-foreign=false",
		"lookupByKey=true",
		"lookupByID=true",
		"extend=true",
		"release=true",
		"release-again=false",
		"extend-released=false",
		"isLocked-released=false",
		"lookupByKey-released=false",
		"acquire-empty-key=error:InvalidArgument",
		"acquire-zero-ttl=error:InvalidArgument",
		"release-bad-id=error:InvalidArgument",
		"reacquire=true",
		"fence-increases=true",
		"release-reacquired=true",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		c.Errorf("transcript differs from the reference (-want +got):\n%s", diff)
	}
}

// case153: the capability type says what the driver implements: a Fenced
// driver stores fenced records, a FairHandoff driver queues its waiters
// (HandoffWatcher), and Guard.Capabilities reports the same description.
func case153[C driver.Capabilities](c *tc[C]) {
	info := driver.Describe(c.d.Capabilities())
	if info.Name == "" {
		c.Error("Capabilities().Name() is empty")
	}
	if _, ok := any(c.d).(driver.RecordStore); info.Fencing && !ok {
		c.Error("the capability type declares fencing but the driver is no RecordStore")
	}
	if _, ok := any(c.d).(driver.HandoffWatcher); info.FairHandoff != ok {
		c.Errorf("FairHandoff = %v but the driver implements HandoffWatcher: %v", info.FairHandoff, ok)
	}
	if diff := cmp.Diff(info, c.guard().Capabilities()); diff != "" {
		c.Errorf("Guard.Capabilities differs from Describe (-describe +guard):\n%s", diff)
	}
}
