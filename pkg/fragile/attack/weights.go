package attack

import (
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/prune"
)

// multiplicativeOps take a weight matrix or kernel that int8 deployments quantise.
var multiplicativeOps = map[string]bool{"Conv": true, "Gemm": true, "MatMul": true}

// multiplicativeWeights names the FLOAT initializers that Conv, Gemm and MatMul
// multiply their inputs by (not their biases).
func multiplicativeWeights(m *onnx.Model) map[string]bool {
	inits := map[string]bool{}
	for _, t := range m.Graph.Initializers {
		if t.DataType == onnx.DataTypeFloat {
			inits[t.Name] = true
		}
	}
	out := map[string]bool{}
	for _, node := range m.Graph.Nodes {
		if !multiplicativeOps[node.OpType] {
			continue
		}
		// Conv: X, W, B; Gemm: A, B, C; MatMul: A, B. The bias is input 2.
		for _, in := range node.Inputs[:min(2, len(node.Inputs))] {
			if inits[in] {
				out[in] = true
			}
		}
	}
	return out
}

// LastLayer names the parameters of the model's last layer: the initializers of the
// last Conv, Gemm or MatMul node that has one, in node order, and those of every node
// after it (a bias Add, say). Fine-tuning only these is the cheap adaptation of a
// pretrained network to a new task.
func LastLayer(m *onnx.Model) []string {
	inits := map[string]bool{}
	for _, t := range prune.Weights(m) {
		inits[t.Name] = true
	}
	last := -1
	for i, node := range m.Graph.Nodes {
		if !multiplicativeOps[node.OpType] {
			continue
		}
		for _, in := range node.Inputs {
			if inits[in] {
				last = i
			}
		}
	}
	if last < 0 {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, node := range m.Graph.Nodes[last:] {
		for _, in := range node.Inputs {
			if inits[in] && !seen[in] {
				seen[in] = true
				out = append(out, in)
			}
		}
	}
	return out
}
