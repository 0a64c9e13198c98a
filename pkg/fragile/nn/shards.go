package nn

import (
	"runtime"
	"sync"
)

// Shards splits a batch of N examples into consecutive shards of Size examples (the
// last may hold fewer), for gradient graphs that run one per core and hold one
// shard's activations each. Workers own the graphs: shard s always runs on worker
// s mod Workers(), so a worker needs a graph per shard size it meets (at most two).
type Shards struct{ N, Size int }

// NewShards splits n examples into at least shards shards of at most maxSize
// examples each.
func NewShards(n, shards, maxSize int) Shards {
	shards = max(1, min(shards, n))
	return Shards{N: n, Size: max(1, min(maxSize, (n+shards-1)/shards))}
}

// Count is the number of shards.
func (s Shards) Count() int { return (s.N + s.Size - 1) / s.Size }

// Bounds are shard i's examples, lo to hi-1.
func (s Shards) Bounds(i int) (lo, hi int) { return i * s.Size, min(s.N, (i+1)*s.Size) }

// Workers is the number of goroutines Run uses: one per core, at most one per shard.
func (s Shards) Workers() int { return min(runtime.GOMAXPROCS(0), s.Count()) }

// Run calls do(w, i) for every shard i on worker w = i mod Workers(), each worker's
// shards in order on one goroutine, and returns when all are done.
func (s Shards) Run(do func(w, i int)) {
	workers, count := s.Workers(), s.Count()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < count; i += workers {
				do(w, i)
			}
		}()
	}
	wg.Wait()
}
