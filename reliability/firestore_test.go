package reliability

import (
	"context"
	"os"
	"testing"
	"time"

	gfirestore "cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/syncguard/syncguard/drivers/firestore"
	"github.com/syncguard/syncguard/internal/testkit"
	"github.com/syncguard/syncguard/reliability/workload"
)

// The Firestore histories, on the emulator named by
// FIRESTORE_EMULATOR_HOST (scripts/test starts it): the lock, permit and
// election workloads as for PostgreSQL. The emulator locks documents
// pessimistically, and a transaction contended across Firestore clients
// (processes) often waits for its "Transaction lock timeout" (seconds), so
// the lock history spreads over more keys, the permit workload has fewer
// clients and the election runs longer than for the other stores. Errors
// count as of unknown outcome unless the call was never sent
// (workload.NeverSent): a commit cut off may have landed.

const fsProject = "demo-test"

// fsLeakOptions are TestMain's (testkit.FirestoreLeakOptions).
var fsLeakOptions = testkit.FirestoreLeakOptions()

// fsClient connects to the emulator (needBackend without it) and closes
// the client when t ends.
func fsClient(t testing.TB) *gfirestore.Client {
	t.Helper()
	host := os.Getenv("FIRESTORE_EMULATOR_HOST")
	if host == "" {
		needBackend(t, "FIRESTORE_EMULATOR_HOST is not set (scripts/test starts the Firestore emulator)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := gfirestore.NewClient(ctx, fsProject)
	if err != nil {
		needBackend(t, "firestore.NewClient: %v", err)
	}
	if _, err := c.Collection("ping").Doc("ping").Get(ctx); err != nil && status.Code(err) != codes.NotFound {
		_ = c.Close()
		needBackend(t, "Firestore emulator at %s not answering: %v", host, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fsCollections selects the collections of suffix s, named as the worker
// program's -fs-suffix names them.
func fsCollections(s string) []firestore.Option {
	return []firestore.Option{
		firestore.WithCollections("locks_"+s, "fences_"+s),
		firestore.WithRecordCollection("records_" + s),
		firestore.WithRateCollection("rate_" + s),
		firestore.WithPermitCollection("permits_" + s),
	}
}

// fsDriver returns a driver over the collections of suffix s, closed when
// t ends. Contended transactions get 25 attempts (the default 5 aborts
// many calls on the emulator, which serialises transactions on a
// document).
func fsDriver(t testing.TB, c *gfirestore.Client, s string) *firestore.Driver {
	t.Helper()
	d, err := firestore.New(c, append(fsCollections(s), firestore.WithMaxAttempts(25))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// TestHistoryFirestore: goroutine clients and two worker processes on one
// set of collections; eight keys, so that the three clients' transactions
// seldom meet on one document.
func TestHistoryFirestore(t *testing.T) {
	t.Parallel()
	c := fsClient(t)
	suffix := "rel" + token()
	d := fsDriver(t, c, suffix)
	cfg := defaultConfig()
	cfg.Keys = keys("f", 8)
	cfg.TTL = 800 * time.Millisecond
	cfg.OpTimeout = 3 * time.Second
	historyRun(t, "firestore", d, []string{"-driver", "firestore", "-fs-project", fsProject, "-fs-suffix", suffix}, cfg)
}

// TestPermitHistoryFirestore: the permit workload on one set of
// collections.
func TestPermitHistoryFirestore(t *testing.T) {
	t.Parallel()
	c := fsClient(t)
	cfg := defaultPermitConfig()
	cfg.Clients = 6
	cfg.TTL = 800 * time.Millisecond
	cfg.OpTimeout = 3 * time.Second
	permitHistoryRun(t, "firestore", fsDriver(t, c, "relp"+token()), cfg)
}

// TestElectionHistoryFirestore: the election workload over two driver
// values, each with a client of its own, on one set of collections.
func TestElectionHistoryFirestore(t *testing.T) {
	t.Parallel()
	suffix := "rele" + token()
	a := fsDriver(t, fsClient(t), suffix)
	b := fsDriver(t, fsClient(t), suffix)
	cfg := defaultElectionConfig()
	// Firestore elects fewer leaders a second than the other stores
	// (transactions contended across the two clients wait for the
	// emulator's lock timeout): a longer run, and more lapses in it.
	cfg.Duration = 9 * time.Second
	cfg.LapseEvery = 6
	electionRun(t, "firestore", []workload.ElectionDriver[firestore.Capabilities]{a, b}, cfg)
}
