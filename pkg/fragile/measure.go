package fragile

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
)

// Measures say whether a trigger set can see a change to the model, beyond its
// labels: a set that sits where the network is silent, or that repeats one image a
// hundred times, misses changes that do not reach that one point. Watermark records
// them in the bundle; `fragile inspect` shows them.
type Measures struct {
	// TriggerLogitScale is the median over triggers of the largest absolute logit.
	TriggerLogitScale float64
	// NaturalLogitScale is the same median over natural inputs, when some were given
	// (zero otherwise): the scale the network works at on real data.
	NaturalLogitScale float64
	// ActiveUnits is the fraction of ReLU-type units (every element of every Relu,
	// LeakyRelu or Clip output) that are active at at least one trigger.
	ActiveUnits float64
	// WeightCoverage is the fraction of weight elements with a non-zero gradient of
	// some trigger's margin: the weights a change to which moves some margin.
	WeightCoverage float64
	// MinDistance and MedianDistance are the smallest and the median pairwise
	// distance between triggers, root mean square per value, relative to the input
	// range (1 would be opposite corners of the range).
	MinDistance, MedianDistance float64
}

// fields lists the measures in their sealed order.
func (m *Measures) fields() []float64 {
	return []float64{m.TriggerLogitScale, m.NaturalLogitScale, m.ActiveUnits, m.WeightCoverage, m.MinDistance, m.MedianDistance}
}

func (m *Measures) setFields(f []float64) {
	m.TriggerLogitScale, m.NaturalLogitScale, m.ActiveUnits, m.WeightCoverage, m.MinDistance, m.MedianDistance = f[0], f[1], f[2], f[3], f[4], f[5]
}

// measureChunk is how many triggers one gradient pass of measureSensitivity takes:
// small enough that a 224-pixel model's activations fit, large enough to amortise.
const measureChunk = 10

// measure computes the measures of pixel-space triggers with their float32 logits.
// natural, when not empty, holds natural pixel-space images back to back.
func measure(ctx context.Context, m *target, triggers []float32, labels []int, logits []float64, natural []float32, inputMin, inputMax float64, seed *rand.Rand) (Measures, error) {
	var ms Measures
	classes, size := m.net.Classes, m.net.InputSize()
	ms.TriggerLogitScale = medianLogitScale(logits, classes)
	if len(natural) >= size {
		scale, err := naturalLogitScale(m, natural, len(labels))
		if err != nil {
			return ms, err
		}
		ms.NaturalLogitScale = scale
	}
	ms.MinDistance, ms.MedianDistance = pairwiseDistances(triggers, size, inputMax-inputMin)
	var err error
	ms.ActiveUnits, ms.WeightCoverage, err = measureSensitivity(ctx, m, triggers, labels, logits, seed)
	return ms, err
}

// medianLogitScale is the median over rows of the largest absolute logit.
func medianLogitScale(logits []float64, classes int) float64 {
	rows := len(logits) / classes
	scales := make([]float64, rows)
	for i := range scales {
		scales[i] = maxAbs(logits[i*classes : (i+1)*classes])
	}
	return median(scales)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// naturalLogitScale runs the natural images through the float32 path, batch at a
// time (the last batch padded with its first image), and returns their median logit
// scale.
func naturalLogitScale(m *target, natural []float32, batch int) (float64, error) {
	size, classes := m.net.InputSize(), m.net.Classes
	count := len(natural) / size
	var scales []float64
	for start := 0; start < count; start += batch {
		chunk := make([]float32, batch*size)
		for k := range batch {
			src := min(start+k, count-1)
			if start+k >= count {
				src = start
			}
			copy(chunk[k*size:(k+1)*size], natural[src*size:(src+1)*size])
		}
		logits, err := m.logits32(chunk)
		if err != nil {
			return 0, fmt.Errorf("natural inputs: %w", err)
		}
		for k := 0; k < batch && start+k < count; k++ {
			scales = append(scales, maxAbs(logits[k*classes:(k+1)*classes]))
		}
	}
	return median(scales), nil
}

// pairwiseDistances returns the smallest and the median distance between two
// triggers, root mean square per value, divided by the input range's width.
func pairwiseDistances(triggers []float32, size int, width float64) (minimum, med float64) {
	n := len(triggers) / size
	if n < 2 {
		return 0, 0
	}
	d := make([]float64, 0, n*(n-1)/2)
	for i := 0; i < n; i++ {
		a := triggers[i*size : (i+1)*size]
		for j := i + 1; j < n; j++ {
			b := triggers[j*size : (j+1)*size]
			sum := 0.0
			for k := range a {
				diff := float64(a[k] - b[k])
				sum += diff * diff
			}
			d = append(d, math.Sqrt(sum/float64(size))/width)
		}
	}
	return slices.Min(d), median(d)
}

// measureSensitivity returns the fraction of ReLU-type units active (above zero) at
// at least one trigger, and the fraction of weight elements with a non-zero
// gradient of some trigger's margin (key logit minus the strongest other). It takes
// the gradient of a sum of margins with random positive coefficients, one pass per
// chunk of triggers: an element whose gradient is non-zero for some trigger is
// non-zero in such a sum with probability one, so a pass per trigger is not needed.
func measureSensitivity(ctx context.Context, m *target, triggers []float32, labels []int, logits []float64, seed *rand.Rand) (active, coverage float64, err error) {
	net := m.net
	classes, size := net.Classes, net.InputSize()
	n := len(labels)
	chunk := min(n, measureChunk)

	g := G.NewGraph()
	x := net.NewInput(g, tensor.Float32, chunk)
	built, err := net.Build(g, x)
	if err != nil {
		return 0, 0, err
	}
	coef := G.NewMatrix(g, tensor.Float32, G.WithShape(chunk, classes), G.WithName("margin_coefficients"))
	weighted, err := G.HadamardProd(built.Logits, coef)
	if err != nil {
		return 0, 0, err
	}
	total, err := G.Sum(weighted)
	if err != nil {
		return 0, 0, err
	}
	weights := built.WeightNodes(net)
	grads, err := G.Grad(total, weights...)
	if err != nil {
		return 0, 0, fmt.Errorf("differentiating the margins: %w", err)
	}
	unitVals := make([]*G.Value, len(built.Units))
	for i, u := range built.Units {
		unitVals[i] = new(G.Value)
		G.Read(u, unitVals[i])
	}
	gradVals := make([]*G.Value, len(grads))
	for i, gr := range grads {
		gradVals[i] = new(G.Value)
		G.Read(gr, gradVals[i])
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()

	var unitSeen, weightSeen [][]bool
	inputs := m.norm.apply(triggers)
	for start := 0; start < n; start += chunk {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		batch := make([]float32, chunk*size)
		c := make([]float32, chunk*classes)
		for k := range chunk {
			i := min(start+k, n-1)
			copy(batch[k*size:(k+1)*size], inputs[i*size:(i+1)*size])
			if start+k >= n {
				continue // padding: a repeat, with no margin of its own
			}
			row := logits[i*classes : (i+1)*classes]
			w := float32(0.5 + seed.Float64())
			c[k*classes+labels[i]] = w
			c[k*classes+strongestOther(row, labels[i])] = -w
		}
		err := runGraph(vm, map[*G.Node]tensor.Tensor{
			x:    tensor.New(tensor.WithShape(append([]int{chunk}, net.InputShape...)...), tensor.WithBacking(batch)),
			coef: tensor.New(tensor.WithShape(chunk, classes), tensor.WithBacking(c)),
		})
		if err != nil {
			return 0, 0, err
		}
		unitSeen = orNonZero(unitSeen, unitVals, func(v float64) bool { return v > 0 }, chunk)
		weightSeen = orNonZero(weightSeen, gradVals, func(v float64) bool { return v != 0 }, 1)
	}
	return fractionTrue(unitSeen), fractionTrue(weightSeen), nil
}

// orNonZero ORs, element by element, whether each value satisfies keep into seen
// (allocated on first use). A value with a leading batch axis of batch examples is
// folded over that axis: a unit is one element of one example.
func orNonZero(seen [][]bool, vals []*G.Value, keep func(float64) bool, batch int) [][]bool {
	if seen == nil {
		seen = make([][]bool, len(vals))
	}
	for i, v := range vals {
		data, err := nn.ToFloat64(*v)
		if err != nil {
			continue
		}
		per := len(data) / batch
		if seen[i] == nil {
			seen[i] = make([]bool, per)
		}
		for e, x := range data {
			if keep(x) {
				seen[i][e%per] = true
			}
		}
	}
	return seen
}

func fractionTrue(seen [][]bool) float64 {
	count, total := 0, 0
	for _, s := range seen {
		for _, b := range s {
			if b {
				count++
			}
		}
		total += len(s)
	}
	if total == 0 {
		return 0
	}
	return float64(count) / float64(total)
}

// strongestOther is the class with the largest logit other than label.
func strongestOther(row []float64, label int) int {
	best := -1
	for j, v := range row {
		if j != label && (best < 0 || v > row[best]) {
			best = j
		}
	}
	return best
}

// runGraph binds the inputs and runs the machine once, a gorgonia panic becoming an error.
func runGraph(vm G.VM, inputs map[*G.Node]tensor.Tensor) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("measuring the triggers: internal error: %v", p)
		}
	}()
	for node, v := range inputs {
		if err := G.Let(node, v); err != nil {
			return err
		}
	}
	vm.Reset()
	if err := vm.RunAll(); err != nil {
		return fmt.Errorf("measuring the triggers: %w", err)
	}
	return nil
}
