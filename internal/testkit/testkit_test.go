package testkit

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClosers(t *testing.T) {
	t.Parallel()
	var got []int
	var c Closers
	c.Add(func() { got = append(got, 1) }, func() { got = append(got, 2) })
	c.Add(func() { got = append(got, 3) })
	c.Close()
	c.Close() // forgotten: runs nothing again
	if diff := cmp.Diff([]int{3, 2, 1}, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}
