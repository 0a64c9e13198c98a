package fragile

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
