package nn_test

import (
	"sync"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
)

// TestShards checks the partition the gradient graphs share: shards tile the batch
// in order, none is larger than asked, there are at least as many as asked (while
// the batch allows), and Run visits each exactly once, on worker i mod Workers.
func TestShards(t *testing.T) {
	for _, c := range []struct{ n, shards, max int }{{100, 2, 100}, {101, 2, 11}, {7, 3, 7}, {7, 20, 7}, {1, 2, 5}, {10, 1, 3}} {
		s := nn.NewShards(c.n, c.shards, c.max)
		if s.Size > c.max || s.Count() < min(c.shards, c.n) {
			t.Errorf("%+v: %d shards of %d", c, s.Count(), s.Size)
		}
		next := 0
		for i := range s.Count() {
			lo, hi := s.Bounds(i)
			if lo != next || hi <= lo || hi-lo > s.Size {
				t.Fatalf("%+v: shard %d is [%d, %d) after %d", c, i, lo, hi, next)
			}
			next = hi
		}
		if next != c.n {
			t.Errorf("%+v: shards end at %d", c, next)
		}
		var mu sync.Mutex
		seen := make([]int, s.Count())
		s.Run(func(w, i int) {
			mu.Lock()
			defer mu.Unlock()
			if w != i%s.Workers() {
				t.Errorf("%+v: shard %d ran on worker %d", c, i, w)
			}
			seen[i]++
		})
		for i, k := range seen {
			if k != 1 {
				t.Errorf("%+v: shard %d ran %d times", c, i, k)
			}
		}
	}
}
