package fragile

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fragile-operator/fragile-operator/internal/onnxtest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
)

// TestTrainingShardsSumToOneGraph checks what sharded training rests on: the shards'
// losses and generator gradients add up to those of the whole batch in one graph
// (the loss is a sum of per-trigger terms, each scaled by the whole batch), and a
// graph run twice gives the same gradient twice (the machine adds every run's
// gradient to the node's, so a run that did not start from zero would drift).
func TestTrainingShardsSumToOneGraph(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	net, err := nn.Compile(onnxtest.ConvNet(r))
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	m, err := newTarget(net, n, normalizer{})
	if err != nil {
		t.Fatal(err)
	}
	opts := WatermarkOptions{InputMin: 0, InputMax: 1, Lambda: 10}
	w := drawGenerator(rand.New(rand.NewPCG(9, 10)), net.InputSize())
	noise := gaussian(rand.New(rand.NewPCG(11, 12)), n*noiseDim, 1)
	onehot := make([]float32, n*net.Classes)
	for i := range n {
		onehot[i*net.Classes+i%net.Classes] = 1
	}
	runShards := func(sizes ...int) shardResult {
		var sum shardResult
		lo := 0
		for _, size := range sizes {
			tg, err := newTrainingGraph(m, w, size, n, opts, false)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.close()
			var res shardResult
			for run := range 2 {
				again, err := tg.run(w, noise[lo*noiseDim:(lo+size)*noiseDim], onehot[lo*net.Classes:(lo+size)*net.Classes])
				if err != nil {
					t.Fatal(err)
				}
				if run == 1 {
					for p := range again.grads {
						for k := range again.grads[p] {
							if again.grads[p][k] != res.grads[p][k] {
								t.Fatalf("shard of %d: parameter %d value %d is %g on the second run, %g on the first", size, p, k, again.grads[p][k], res.grads[p][k])
							}
						}
					}
				}
				res = again
			}
			sum.loss += res.loss
			for p, g := range res.grads {
				if sum.grads[p] == nil {
					sum.grads[p] = make([]float32, len(g))
				}
				for k, v := range g {
					sum.grads[p][k] += v
				}
			}
			lo += size
		}
		return sum
	}
	whole := runShards(n)
	for _, sizes := range [][]int{{3, 3}, {4, 2}, {1, 2, 3}} {
		split := runShards(sizes...)
		if math.Abs(split.loss-whole.loss) > 1e-5*math.Abs(whole.loss) {
			t.Errorf("shards %v: loss %g, one graph %g", sizes, split.loss, whole.loss)
		}
		for p := range whole.grads {
			largest := 0.0
			for _, v := range whole.grads[p] {
				largest = math.Max(largest, math.Abs(float64(v)))
			}
			if largest == 0 {
				t.Fatalf("parameter %d: zero gradient, the test checks nothing", p)
			}
			for k, v := range whole.grads[p] {
				if d := math.Abs(float64(split.grads[p][k] - v)); d > 1e-4*largest {
					t.Fatalf("shards %v: parameter %d value %d: %g, one graph %g", sizes, p, k, split.grads[p][k], v)
				}
			}
		}
	}
}

// TestTrainingPartition checks the partition: at least trainingShards shards, fewer
// triggers per shard when the model's activations are large, and one shard with the
// duplicate penalty.
func TestTrainingPartition(t *testing.T) {
	for _, c := range []struct {
		n          int
		perExample int64
		diverse    bool
		want       int
	}{
		{100, 0, false, 50},
		{101, 0, false, 51},
		{1, 0, false, 1},
		{100, graphShardBytes / 10, false, 10},
		{100, 2 * graphShardBytes, false, 1},
		{100, graphShardBytes / 10, true, 100},
	} {
		if got := trainingPartition(c.n, c.perExample, c.diverse); got.N != c.n || got.Size != c.want {
			t.Errorf("trainingPartition(%d, %d, %v) = %+v, want %d per shard", c.n, c.perExample, c.diverse, got, c.want)
		}
	}
}
