package firestore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/election"
)

// The child process of TestLeaderKilled reads these: the collections'
// suffix and the election key.
const (
	killedChildEnv = "SYNCGUARD_FIRESTORE_ELECTION_CHILD"
	killedKeyEnv   = "SYNCGUARD_FIRESTORE_ELECTION_KEY"
	killedTTL      = 2 * time.Second
	// killedSkew allows for the two processes' reading of one clock
	// (the child's expiry, the parent's time of election) in ms steps.
	killedSkew = 50 * time.Millisecond
)

// runKilledLeader campaigns, prints its term and its lease's expiry (Unix
// ms) on stdout and leads until killed.
func runKilledLeader() {
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	c, err := firestore.NewClient(ctx, projectID)
	if err != nil {
		fail(err)
	}
	d, err := New(c, collectionOptsFor(os.Getenv(killedChildEnv))...)
	if err != nil {
		fail(err)
	}
	e, err := election.New(syncguard.NewFenced(d), os.Getenv(killedKeyEnv))
	if err != nil {
		fail(err)
	}
	l, err := e.Campaign(ctx, []byte(fmt.Sprint("pid ", os.Getpid())), syncguard.TTL(killedTTL))
	if err != nil {
		fail(err)
	}
	fmt.Println("elected", syncguard.FenceOf(l), l.ExpiresAtMs())
	select {}
}

// TestLeaderKilled: the leader's process is SIGKILLed (no release, no
// goodbye); a candidate in this process is elected TTL + tolerance after
// the leader's last acquisition or extension, not earlier (less a small
// skew), and at most a few seconds later, with a greater term. Firestore
// judges expiry by the client's clock; both processes read this machine's.
func TestLeaderKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := newClient(t)
	suffix := token()
	d, err := New(c, collectionOptsFor(suffix)...)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	key := "killed-leader-" + token()

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killedChildEnv+"="+suffix, killedKeyEnv+"="+key)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) != 3 || fields[0] != "elected" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q, %v", line, err)
	}
	oldTerm, err := driver.ParseFence(fields[1])
	if err != nil {
		t.Fatal(err)
	}
	oldExpMs, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	e, err := election.New(syncguard.NewFenced(d), key)
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := e.Leader(ctx); err != nil || cur.Term != oldTerm {
		t.Fatalf("Leader = %+v, %v; want the child's term %v", cur, err, oldTerm)
	}

	killed := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	l, err := e.Campaign(ctx, []byte("successor"), syncguard.TTL(killedTTL), syncguard.RetryDelay(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	elected := time.Now()
	defer l.Close()
	took := elected.Sub(killed)
	// The child's lease ran from its last acquisition or extension,
	// before the kill: at least TTL - lead of it was left at the kill.
	lead := killed.Sub(time.UnixMilli(oldExpMs - killedTTL.Milliseconds()))
	t.Logf("firestore: new leader %v after the old one (term %v) was SIGKILLed: %v (TTL %v + tolerance %v; the old lease was %v old at the kill)",
		syncguard.FenceOf(l), oldTerm, took.Round(time.Millisecond), killedTTL, driver.Tolerance, lead.Round(time.Millisecond))
	if syncguard.FenceOf(l) <= oldTerm {
		t.Errorf("new term %v; want > %v", syncguard.FenceOf(l), oldTerm)
	}
	// No one may take over before the old lease's expiry plus the
	// tolerance (the child may have extended it, only later).
	if earliest := time.UnixMilli(oldExpMs).Add(driver.Tolerance - killedSkew); elected.Before(earliest) {
		t.Errorf("new leader at %v, %v before the old lease's expiry + tolerance (%v)",
			elected.Format(time.StampMilli), earliest.Sub(elected), time.UnixMilli(oldExpMs).Add(driver.Tolerance).Format(time.StampMilli))
	}
	if lo := killedTTL + driver.Tolerance - lead - killedSkew; took < lo {
		t.Errorf("new leader after %v; want no earlier than %v", took, lo)
	}
	// Waiting adds one backoff step (capped) and a few transactions.
	if hi := killedTTL + driver.Tolerance + 3*time.Second; took > hi {
		t.Errorf("new leader after %v; want within %v", took, hi)
	}
}
