package syncguard_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
)

// OncePerKey runs the function once per key and replays its stored result
// to every later caller, in this process and in any other.
func ExampleOncePerKey() {
	type Receipt struct {
		ID     string
		Amount int
	}
	g := syncguard.New(memory.New())
	once, err := syncguard.NewOncePerKey[Receipt](g)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	charge := func(ctx context.Context) (Receipt, error) {
		fmt.Println("charging the card")
		return Receipt{ID: "rcpt_1", Amount: 4200}, nil
	}

	r1, err1 := once.Do(ctx, "payment:123", charge)
	r2, err2 := once.Do(ctx, "payment:123", charge) // replayed, not charged again
	fmt.Println(r1, err1)
	fmt.Println(r2, err2)
	// Output:
	// charging the card
	// {rcpt_1 4200} <nil>
	// {rcpt_1 4200} <nil>
}

// In non-blocking mode a caller that arrives while the function runs
// elsewhere gets ErrInProgress instead of waiting.
func ExampleWithNonBlocking() {
	g := syncguard.New(memory.New())
	once, _ := syncguard.NewOncePerKey[string](g, syncguard.WithNonBlocking())
	ctx := context.Background()

	_, _ = once.Do(ctx, "job:7", func(ctx context.Context) (string, error) {
		// A second caller while this one runs:
		_, err := once.Do(ctx, "job:7", func(ctx context.Context) (string, error) { return "", nil })
		fmt.Println("second caller:", errors.Is(err, syncguard.ErrInProgress))
		return "done", nil
	})
	v, err := once.Do(ctx, "job:7", notCalled)
	fmt.Println("later caller:", v, err)
	// Output:
	// second caller: true
	// later caller: done <nil>
}

// notCalled is never called: the result is stored.
func notCalled(context.Context) (string, error) { return "", errors.New("not called") }
