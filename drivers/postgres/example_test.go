package postgres_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/postgres"
)

// Example needs a PostgreSQL server, so it is compiled but not run by go
// test. DATABASE_URL is, for example,
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	// Once, at deployment (or apply postgres.Schema() with a migration
	// tool): creates the tables if they do not exist.
	if err := postgres.Setup(ctx, pool); err != nil {
		log.Fatal(err)
	}
	d, err := postgres.New(pool)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()

	// Guard adds retries, leases and release on every path.
	g := syncguard.New(d) // *syncguard.Guard[postgres.Capabilities]
	err = g.Do(ctx, "payment:123", func(ctx context.Context, l *syncguard.Lease[postgres.Capabilities]) error {
		// The fence goes with every write the lock protects.
		fmt.Println("fence:", syncguard.FenceOf(l))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	// Expired lock rows, records and rate state can be swept periodically.
	if _, err := d.Sweep(ctx); err != nil {
		log.Print(err)
	}
}

// ExampleNew_pgBouncer configures the pool for PgBouncer in
// transaction-pooling mode and gives the LISTEN connection a direct route
// to the server.
func ExampleNew_pgBouncer() {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig("postgres://app@pgbouncer:6432/app")
	if err != nil {
		log.Fatal(err)
	}
	// No server-side prepared statements: one round trip per operation.
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	direct, err := pgxpool.ParseConfig("postgres://app@db-primary:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	d, err := postgres.New(pool, postgres.WithListenConfig(direct.ConnConfig))
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
}
