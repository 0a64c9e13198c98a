package nn

import (
	"fmt"
	"strings"

	"gorgonia.org/tensor"
)

// selectKernel builds each output element from one input element chosen axis by
// axis: along axis a, output position i reads input position index[a][i], or the
// fill value when that is -1. One kernel serves constant Pad (fill at the edges),
// Slice with steps, Split and Gather with constant indices; its gradient sends each
// output's gradient back to the element it read.
type selectKernel struct {
	index [][]int
	fill  float64
	what  string // the op, for the hash and messages
}

// rangeIndex lists start, start+step, ... while inside [0, n) ending before end.
func rangeIndex(start, end, step int) []int {
	var idx []int
	for i := start; (step > 0 && i < end) || (step < 0 && i > end); i += step {
		idx = append(idx, i)
	}
	return idx
}

// identityIndex is 0..n-1.
func identityIndex(n int) []int { return rangeIndex(0, n, 1) }

func (k *selectKernel) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s(fill %g", k.what, k.fill)
	for _, idx := range k.index {
		b.WriteString("; ")
		b.WriteString(describeIndex(idx))
	}
	b.WriteString(")")
	return b.String()
}

// describeIndex renders an axis's selection exactly but briefly: fill positions at
// either end as "pad N", and the rest as start:end:step when it is a progression.
func describeIndex(idx []int) string {
	lead, trail := 0, 0
	for lead < len(idx) && idx[lead] < 0 {
		lead++
	}
	for trail < len(idx)-lead && idx[len(idx)-1-trail] < 0 {
		trail++
	}
	body := idx[lead : len(idx)-trail]
	progression := len(body) > 0
	for i := 1; i < len(body) && progression; i++ {
		progression = body[i] >= 0 && body[i]-body[i-1] == body[1]-body[0] && body[1] != body[0]
	}
	var parts []string
	if lead > 0 {
		parts = append(parts, fmt.Sprintf("pad %d", lead))
	}
	switch {
	case progression && len(body) > 1:
		step := body[1] - body[0]
		parts = append(parts, fmt.Sprintf("%d:%d:%d", body[0], body[len(body)-1]+step, step))
	case len(body) > 0:
		parts = append(parts, fmt.Sprint(body))
	}
	if trail > 0 {
		parts = append(parts, fmt.Sprintf("pad %d", trail))
	}
	return strings.Join(parts, " ")
}

func (k *selectKernel) differentiable() []bool { return []bool{true} }

func (k *selectKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	x := in[0]
	if len(x) != len(k.index) {
		return nil, fmt.Errorf("%s of %d axes applied to shape %v", k.what, len(k.index), x)
	}
	out := make(tensor.Shape, len(x))
	for a, idx := range k.index {
		for _, i := range idx {
			if i < -1 || i >= x[a] {
				return nil, fmt.Errorf("%s: index %d out of range for axis %d of %v", k.what, i, a, x)
			}
		}
		if len(idx) == 0 {
			return nil, unsupported("%s: axis %d of %v selects nothing, and empty tensors are not supported", k.what, a, x)
		}
		out[a] = len(idx)
	}
	return out, nil
}

// sources returns, for each output element in row-major order, the flat input
// index it reads, or -1 for the fill value.
func (k *selectKernel) sources(x tensor.Shape) []int {
	src := []int{0}
	for a, idx := range k.index {
		stride := 1
		for _, d := range x[a+1:] {
			stride *= d
		}
		next := make([]int, 0, len(src)*len(idx))
		for _, s := range src {
			for _, i := range idx {
				if s < 0 || i < 0 {
					next = append(next, -1)
				} else {
					next = append(next, s+i*stride)
				}
			}
		}
		src = next
	}
	return src
}

func (k *selectKernel) forward(out []float64, in [][]float64, shapes []tensor.Shape) {
	for o, s := range k.sources(shapes[0]) {
		if s < 0 {
			out[o] = k.fill
		} else {
			out[o] = in[0][s]
		}
	}
}

func (k *selectKernel) backward(_ int, grad, gradOut []float64, _ [][]float64, shapes []tensor.Shape) {
	for o, s := range k.sources(shapes[0]) {
		if s >= 0 {
			grad[s] += gradOut[o]
		}
	}
}
