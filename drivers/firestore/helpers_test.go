package firestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/delayproxy"
	"github.com/syncguard/syncguard/internal/testkit"
	"go.uber.org/goleak"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Tests run against the Firestore emulator named by FIRESTORE_EMULATOR_HOST
// (scripts/test starts the official one). Without it they skip, or fail
// under SYNCGUARD_REQUIRE_BACKENDS=1.

const projectID = "demo-test"

func TestMain(m *testing.M) {
	if os.Getenv(killedChildEnv) != "" {
		runKilledLeader() // a leader process of TestLeaderKilled; never returns
	}
	goleak.VerifyTestMain(m, fsLeakOptions...)
}

func needBackend(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("SYNCGUARD_REQUIRE_BACKENDS") == "1" {
		t.Fatalf("backend required but unavailable: "+format, args...)
	}
	t.Skipf("backend unavailable (set SYNCGUARD_REQUIRE_BACKENDS=1 to fail instead): "+format, args...)
}

// newClient connects to the emulator and closes the client when t ends.
func newClient(t testing.TB) *firestore.Client {
	t.Helper()
	if os.Getenv("FIRESTORE_EMULATOR_HOST") == "" {
		needBackend(t, "FIRESTORE_EMULATOR_HOST is not set; scripts/test starts the emulator "+
			"(java -cp /usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar "+
			"com.google.cloud.datastore.emulator.firestore.CloudFirestore --host=127.0.0.1 --port=PORT --project_id=demo-test)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := firestore.NewClient(ctx, projectID)
	if err != nil {
		needBackend(t, "firestore.NewClient: %v", err)
	}
	if _, err := c.Collection("ping").Doc("ping").Get(ctx); err != nil && !isNotFound(err) {
		c.Close()
		needBackend(t, "emulator at %s not answering: %v", os.Getenv("FIRESTORE_EMULATOR_HOST"), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func token() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// collectionOpts returns options selecting fresh collections.
func collectionOpts() []Option { return collectionOptsFor(token()) }

// collectionOptsFor returns options selecting the collections of suffix s.
func collectionOptsFor(s string) []Option {
	return []Option{
		WithCollections("locks_"+s, "fences_"+s),
		WithRecordCollection("records_" + s),
		WithRateCollection("rate_" + s),
		WithPermitCollection("permits_" + s),
	}
}

// newDriver returns a driver over fresh collections, closed when t ends.
func newDriver(t testing.TB, c *firestore.Client, opts ...Option) *Driver {
	t.Helper()
	d, err := New(c, append(collectionOpts(), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// harness is the conformance harness: a driver and a cleanup driver over
// the same fresh collections.
type harness struct {
	testkit.DriverPair[Capabilities, *Driver]
	c    *firestore.Client
	opts []Option // D's, for OpenDriver
}

func newHarness(t *testing.T, c *firestore.Client) *harness {
	// Contention cases (40 concurrent transactions on one document) need
	// more attempts than the default on the emulator; the suite does not
	// assert retry counts.
	opts := append(collectionOpts(), WithMaxAttempts(25))
	d, err := New(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := New(c, append(opts, WithCleanupInIsLocked(true))...)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{c: c, DriverPair: testkit.DriverPair[Capabilities, *Driver]{D: d, DC: dc}, opts: opts}
}

// DriverWithLatency returns a driver over the same collections whose
// client reaches the emulator through a loopback proxy delaying every
// chunk by d each way.
func (h *harness) DriverWithLatency(d time.Duration) driver.Driver[Capabilities] {
	p, err := delayproxy.Start(os.Getenv("FIRESTORE_EMULATOR_HOST"), d)
	if err != nil {
		return nil
	}
	conn, err := grpc.NewClient(p.Addr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(emulatorOwner{}))
	if err != nil {
		p.Close()
		return nil
	}
	c, err := firestore.NewClient(context.Background(), projectID, option.WithGRPCConn(conn))
	if err != nil {
		_ = conn.Close()
		p.Close()
		return nil
	}
	drv, err := New(c, h.opts...)
	if err != nil {
		_ = c.Close()
		p.Close()
		return nil
	}
	h.Closers.Add(func() { drv.Close(); _ = c.Close(); p.Close() })
	return drv
}

// emulatorOwner is the emulator's owner credential, as the client sends
// it when FIRESTORE_EMULATOR_HOST is set.
type emulatorOwner struct{}

func (emulatorOwner) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer owner"}, nil
}

func (emulatorOwner) RequireTransportSecurity() bool { return false }

// OpenDriver returns a driver over the same collections with a client of
// its own, as another process would have.
func (h *harness) OpenDriver(ctx context.Context) (driver.Driver[Capabilities], error) {
	c, err := firestore.NewClient(ctx, projectID)
	if err != nil {
		return nil, err
	}
	d, err := New(c, h.opts...)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	h.Closers.Add(func() { d.Close(); _ = c.Close() })
	return d, nil
}

// WriteRawLock writes a lock document directly, expiring at client-now +
// off.
func (h *harness) WriteRawLock(ctx context.Context, key, lockID string, fence driver.Fence, off time.Duration) error {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return err
	}
	base, err := docID(k)
	if err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	_, err = h.D.locks.Doc(base).Set(ctx, map[string]any{
		"lockId": lockID, "expiresAtMs": now + off.Milliseconds(), "acquiredAtMs": now, "key": k, "fence": fence.String(),
	})
	return err
}

// SetFence sets key's fence counter.
func (h *harness) SetFence(ctx context.Context, key string, value int64) error {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return err
	}
	base, _ := docID(k)
	fid, _ := fenceID(base)
	f, err := driver.FormatFence(value)
	if err != nil {
		return err
	}
	_, err = h.D.fences.Doc(fid).Set(ctx, map[string]any{"fence": f, "keyDebug": k})
	return err
}

func (h *harness) exists(ctx context.Context, key string, fence bool) (bool, error) {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return false, err
	}
	base, _ := docID(k)
	ref := h.D.locks.Doc(base)
	if fence {
		fid, _ := fenceID(base)
		ref = h.D.fences.Doc(fid)
	}
	s, err := getDoc(ctx, ref)
	return s != nil, err
}

func (h *harness) LockDataExists(ctx context.Context, key string) (bool, error) {
	return h.exists(ctx, key, false)
}

func (h *harness) FenceCounterExists(ctx context.Context, key string) (bool, error) {
	return h.exists(ctx, key, true)
}
