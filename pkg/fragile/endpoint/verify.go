package endpoint

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/oip"
)

// VerifyOptions tune what the traffic of one verification looks like.
type VerifyOptions struct {
	// Decoys is the number of decoy examples mixed among the triggers; their answers are
	// discarded. Negative means none; zero means DefaultDecoys.
	Decoys int
	// Rand orders triggers and decoys and makes the decoys and request IDs. It must be
	// secret and fresh for each verification, or the order is predictable; nil seeds one
	// from crypto/rand. Tests pass a seeded one.
	Rand *rand.Rand
}

// DefaultDecoys is the number of decoys per verification when VerifyOptions.Decoys is 0.
const DefaultDecoys = 16

// Verify runs the bundle's triggers through the served model and compares the top-1
// labels it returns with the key labels, reporting exactly as fragile.Verify does for
// a file: ResultTampered only when every answer arrived, was well formed, and at least
// one label differs. An unreachable or unready server, metadata that does not match
// the watermarked model, an error status, a timeout or a malformed answer is
// ResultError with the reason: never tampering.
func Verify(ctx context.Context, c *Client, b *fragile.Bundle, opts VerifyOptions) fragile.VerifyReport {
	start := time.Now()
	report := fragile.VerifyReport{Total: b.Len(), Endpoint: c.String()}
	fail := func(err error) fragile.VerifyReport {
		report.Result = fragile.ResultError
		report.Message = err.Error()
		report.Requests = c.Requests()
		report.DurationSeconds = time.Since(start).Seconds()
		return report
	}
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("verification cancelled: %w", err))
	}
	r := opts.Rand
	if r == nil {
		r = secretRand()
	}
	if err := c.ServerReady(ctx); err != nil {
		return fail(err)
	}
	if err := c.ModelReady(ctx); err != nil {
		return fail(err)
	}
	md, err := c.Metadata(ctx)
	if err != nil {
		return fail(err)
	}
	p, err := planFor(md, b, c.cfg.BatchSize)
	if err != nil {
		return fail(fmt.Errorf("model %s: %w", c.modelLabel(), err))
	}
	decoys := opts.Decoys
	switch {
	case decoys < 0:
		decoys = 0
	case decoys == 0:
		decoys = DefaultDecoys
	}
	labels, err := p.run(ctx, c, b, decoys, r)
	if err != nil {
		return fail(err)
	}
	for i, l := range labels {
		if l != b.KeyLabels[i] {
			report.Mismatched++
		}
	}
	report.Result = fragile.ResultIntact
	if report.Mismatched > 0 {
		report.Result = fragile.ResultTampered
		report.Message = fmt.Sprintf("%d of %d triggers changed label", report.Mismatched, report.Total)
	}
	report.Requests = c.Requests()
	report.DurationSeconds = time.Since(start).Seconds()
	return report
}

// secretRand is a ChaCha8 source seeded from crypto/rand: the order of one
// verification's traffic must not be predictable from any earlier one.
func secretRand() *rand.Rand {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // crypto/rand.Read never fails on supported platforms
	return rand.New(rand.NewChaCha8(seed))
}

// plan is how the triggers travel: which input and output, and how many examples go
// in one request.
type plan struct {
	input, output string
	// batch is the number of examples per request; fixed says the model declares it
	// (every request must carry exactly batch examples) rather than -1.
	batch int
	fixed bool
	// batched says the input has a batch dimension at all.
	batched bool
	example []int64 // one example's shape
	classes int
}

// planFor matches the model's metadata with the watermarked model: an FP32 input whose
// non-batch dimensions are the triggers' (or -1), and an output with one score per class.
func planFor(md *oip.ModelMetadata, b *fragile.Bundle, maxBatch int) (*plan, error) {
	p := &plan{classes: b.Classes}
	for _, d := range b.InputShape {
		p.example = append(p.example, int64(d))
	}
	in, err := pickInput(md.Inputs, b.InputName)
	if err != nil {
		return nil, err
	}
	if in.Datatype != oip.FP32 {
		return nil, fmt.Errorf("input %s takes %s; fragile triggers are FP32", in.Name, in.Datatype)
	}
	p.input = in.Name
	dims := in.Shape
	switch len(dims) {
	case len(p.example) + 1:
		p.batched = true
		if !fits(dims[1:], p.example) {
			return nil, fmt.Errorf("input %s has shape %v, the watermark was made for examples of shape %v", in.Name, dims, b.InputShape)
		}
		switch d := dims[0]; {
		case d == -1:
			p.batch = maxBatch
		case d > 0 && d <= 1024:
			p.batch, p.fixed = int(d), true
		default:
			return nil, fmt.Errorf("input %s has batch dimension %d", in.Name, d)
		}
	case len(p.example):
		if !fits(dims, p.example) {
			return nil, fmt.Errorf("input %s has shape %v, the watermark was made for examples of shape %v", in.Name, dims, b.InputShape)
		}
		p.batch, p.fixed = 1, true
	default:
		return nil, fmt.Errorf("input %s has shape %v, the watermark was made for examples of shape %v (with or without a batch dimension)", in.Name, dims, b.InputShape)
	}
	out, err := pickOutput(md.Outputs, b.Classes)
	if err != nil {
		return nil, err
	}
	p.output = out.Name
	return p, nil
}

func pickInput(inputs []oip.TensorMetadata, want string) (*oip.TensorMetadata, error) {
	if len(inputs) == 1 {
		return &inputs[0], nil
	}
	names := make([]string, len(inputs))
	for i := range inputs {
		if inputs[i].Name == want {
			return &inputs[i], nil
		}
		names[i] = inputs[i].Name
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("the metadata lists no input")
	}
	return nil, fmt.Errorf("the model has inputs %s and none is %s, the input the watermark was made for", strings.Join(names, ", "), want)
}

// pickOutput takes the only output, or the first whose last dimension is the class
// count (or variable).
func pickOutput(outputs []oip.TensorMetadata, classes int) (*oip.TensorMetadata, error) {
	scores := func(o *oip.TensorMetadata) bool {
		n := len(o.Shape)
		return n > 0 && (o.Shape[n-1] == int64(classes) || o.Shape[n-1] == -1)
	}
	for i := range outputs {
		if o := &outputs[i]; scores(o) || len(outputs) == 1 {
			if !scores(o) {
				return nil, fmt.Errorf("output %s has shape %v, the watermark was made for %d classes", o.Name, o.Shape, classes)
			}
			return o, nil
		}
	}
	if len(outputs) == 0 {
		return nil, fmt.Errorf("the metadata lists no output")
	}
	return nil, fmt.Errorf("no output has %d class scores in its last dimension", classes)
}

// fits reports whether declared dims (-1 variable) accept shape want.
func fits(declared, want []int64) bool {
	if len(declared) != len(want) {
		return false
	}
	for i, d := range declared {
		if d != -1 && d != want[i] {
			return false
		}
	}
	return true
}

// item is one example on the wire: a trigger (index into the bundle) or a decoy (-1).
type item struct {
	trigger int
	values  []float32
}

// run sends every trigger and decoy once, in one secret order, and returns each
// trigger's top-1 label.
func (p *plan) run(ctx context.Context, c *Client, b *fragile.Bundle, decoys int, r *rand.Rand) ([]int, error) {
	items := make([]item, 0, b.Len()+decoys)
	for i := range b.Len() {
		items = append(items, item{trigger: i, values: b.Trigger(i)})
	}
	for range decoys {
		items = append(items, item{trigger: -1, values: decoy(b, r)})
	}
	// A fixed batch is filled up with more decoys, so every request is full.
	for p.fixed && len(items)%p.batch != 0 {
		items = append(items, item{trigger: -1, values: decoy(b, r)})
	}
	r.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })

	type request struct {
		body  *oip.InferRequest
		items []item
	}
	var requests []request
	for start := 0; start < len(items); start += p.batch {
		chunk := items[start:min(start+p.batch, len(items))]
		requests = append(requests, request{body: p.request(chunk, r), items: chunk})
	}

	labels := make([]int, b.Len())
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Concurrency)
	for _, req := range requests {
		g.Go(func() error {
			resp, err := c.Infer(gctx, req.body)
			if err != nil {
				return err
			}
			top, err := p.topOne(resp, len(req.items))
			if err != nil {
				return fmt.Errorf("inference on model %s: %w", c.modelLabel(), err)
			}
			for k, it := range req.items {
				if it.trigger >= 0 {
					labels[it.trigger] = top[k]
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return labels, nil
}

// request builds the infer request for some examples.
func (p *plan) request(chunk []item, r *rand.Rand) *oip.InferRequest {
	size := 1
	for _, d := range p.example {
		size *= int(d)
	}
	values := make([]float32, 0, len(chunk)*size)
	for _, it := range chunk {
		values = append(values, it.values...)
	}
	shape := p.example
	if p.batched {
		shape = append([]int64{int64(len(chunk))}, p.example...)
	}
	var id [8]byte
	binary.LittleEndian.PutUint64(id[:], r.Uint64())
	return &oip.InferRequest{
		ID:      hex.EncodeToString(id[:]),
		Inputs:  []oip.Tensor{{Name: p.input, Shape: shape, Datatype: oip.FP32, Data: oip.Data{Values: values}}},
		Outputs: []oip.RequestedOuput{{Name: p.output}},
	}
}

// topOne checks that a response holds one row of class scores per example and returns
// each row's arg max (the lower index on ties).
func (p *plan) topOne(resp *oip.InferResponse, n int) ([]int, error) {
	var out *oip.Tensor
	for i := range resp.Outputs {
		if resp.Outputs[i].Name == p.output || len(resp.Outputs) == 1 {
			out = &resp.Outputs[i]
			break
		}
	}
	if out == nil {
		return nil, fmt.Errorf("the response has no output %s", p.output)
	}
	if err := out.Data.CheckShape(out.Shape); err != nil {
		return nil, fmt.Errorf("output %s: %w", out.Name, err)
	}
	rows, perRow := int64(1), int64(1)
	if len(out.Shape) > 0 {
		rows = out.Shape[0]
		for _, d := range out.Shape[1:] {
			perRow *= d
		}
	}
	if !p.batched {
		rows, perRow = 1, int64(len(out.Data.Values))
	}
	if rows != int64(n) || perRow != int64(p.classes) {
		return nil, fmt.Errorf("output %s has shape %v; %d examples of %d classes need [%d %d]", out.Name, out.Shape, n, p.classes, n, p.classes)
	}
	top := make([]int, n)
	for i := range n {
		row := out.Data.Values[i*p.classes : (i+1)*p.classes]
		top[i] = argMax(row)
	}
	return top, nil
}

func argMax(row []float32) int {
	best := 0
	for j, v := range row {
		if v > row[best] {
			best = j
		}
	}
	return best
}

// decoy makes an input with a trigger's statistics but no key label: a random trigger,
// circularly shifted along its last axis and with a random subset of its values
// swapped with a second trigger's. Decoys look like triggers, not like natural inputs:
// they hide how many examples are triggers and which answers count, not that the
// traffic is a verification.
func decoy(b *fragile.Bundle, r *rand.Rand) []float32 {
	src := b.Trigger(r.IntN(b.Len()))
	other := b.Trigger(r.IntN(b.Len()))
	width := b.InputShape[len(b.InputShape)-1]
	shift := 1 + r.IntN(max(width-1, 1))
	out := make([]float32, len(src))
	for i := range out {
		row := i - i%width
		out[i] = src[row+(i%width+shift)%width]
		if r.IntN(4) == 0 {
			out[i] = other[i]
		}
	}
	return slices.Clip(out)
}
