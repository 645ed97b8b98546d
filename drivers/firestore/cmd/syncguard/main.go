// Command syncguard is the syncguard command with the Firestore backend
// added: everything github.com/syncguard/syncguard/cmd/syncguard does, plus
// backend URLs
//
//	firestore://PROJECT[?locks=COLLECTION&fences=COLLECTION]
//
// (FIRESTORE_EMULATOR_HOST selects the emulator). It lives in the
// Firestore driver's module so that the core module does not depend on the
// Google Cloud libraries:
//
//	go install github.com/syncguard/syncguard/drivers/firestore/cmd/syncguard@latest
package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/syncguard/syncguard/cli"
	"github.com/syncguard/syncguard/driver"
	sgfirestore "github.com/syncguard/syncguard/drivers/firestore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, cli.WithBackend("firestore", open,
		"firestore://PROJECT[?locks=C&fences=C]  Firestore (FIRESTORE_EMULATOR_HOST for the emulator)"))
	stop()
	os.Exit(code)
}

// open connects to the Firestore project a firestore:// URL names. A URL
// that cannot work is an InvalidArgument error (exit 2); a failure to
// connect is any other error (exit 69).
func open(ctx context.Context, u *url.URL) (*cli.Session, error) {
	if u.Host == "" {
		return nil, driver.NewError(driver.InvalidArgument, "firestore:// needs a project: firestore://PROJECT")
	}
	for name := range u.Query() {
		if name != "locks" && name != "fences" {
			return nil, driver.NewError(driver.InvalidArgument,
				fmt.Sprintf("firestore URL: unknown option %q (known: locks, fences)", name))
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client, err := firestore.NewClient(cctx, u.Host)
	if err != nil {
		return nil, fmt.Errorf("connecting to Firestore: %v", err)
	}
	q := u.Query()
	d, err := sgfirestore.New(client, sgfirestore.WithCollections(q.Get("locks"), q.Get("fences")))
	if err != nil {
		client.Close()
		return nil, err
	}
	return cli.NewSession("firestore", d, func() { d.Close(); _ = client.Close() }), nil
}
