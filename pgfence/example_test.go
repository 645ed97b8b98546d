package pgfence_test

import (
	"context"
	"errors"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/pgfence"
)

// Fence writes to a table of your own: the row is written only if its
// fence column holds no newer fence.
//
//	CREATE TABLE accounts (id text PRIMARY KEY, balance bigint NOT NULL, fence bigint NOT NULL);
func ExampleTable_Upsert() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	g := syncguard.New(memory.New()) // any fenced driver
	accounts := pgfence.Table{Name: "accounts", Key: []string{"id"}}

	err = g.Do(ctx, "account:42", func(ctx context.Context, l *syncguard.Lease[memory.Capabilities]) error {
		return accounts.Upsert(ctx, pool, syncguard.FenceOf(l), map[string]any{"id": "42", "balance": 1000})
	})
	if errors.Is(err, syncguard.ErrStaleFence) {
		log.Print("a newer lock holder already wrote account 42; nothing changed")
	}
}

// Hand-written statements use $1 for the fence.
func ExampleExec() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	var fence syncguard.Fence = 7 // from syncguard.FenceOf(lease)

	_, err = pgfence.Exec(ctx, pool, fence,
		`UPDATE accounts SET balance = balance - $2, fence = $1 WHERE id = $3 AND fence <= $1`, 100, "42")
	if errors.Is(err, syncguard.ErrStaleFence) {
		log.Print("stale lock holder, or no such account")
	}
}

// A Store backs a FencedWriter with a PostgreSQL table.
func ExampleStore() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgfence.NewStore(pool, "") // table syncguard_fenced
	if err != nil {
		log.Fatal(err)
	}
	if err := store.CreateTable(ctx); err != nil {
		log.Fatal(err)
	}
	g := syncguard.New(memory.New())
	w, err := syncguard.NewFencedWriter(g, syncguard.WithFencedStore(store))
	if err != nil {
		log.Fatal(err)
	}
	_ = w // w.Write(ctx, lease, "report:2024", data)
}
