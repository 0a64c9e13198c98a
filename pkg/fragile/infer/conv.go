package infer

import (
	"math"
	"slices"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// window is the geometry of a 2-D convolution or pooling window.
type window struct {
	kh, kw, sh, sw, dh, dw   int
	top, left, bottom, right int
	h, w, oh, ow             int
}

// windowOf resolves kernel, strides, dilations, pads and auto_pad for an input of
// h x w. ceil rounds the output size up (pooling's ceil_mode).
func windowOf(node *onnx.Node, kh, kw, h, w int, ceil bool) (window, error) {
	g := window{kh: kh, kw: kw, sh: 1, sw: 1, dh: 1, dw: 1, h: h, w: w}
	if s, ok := attrInts(node, "strides"); ok {
		if len(s) != 2 {
			return g, unsupported("strides %v: only 2-D windows are supported", s)
		}
		g.sh, g.sw = int(s[0]), int(s[1])
	}
	if d, ok := attrInts(node, "dilations"); ok {
		if len(d) != 2 {
			return g, unsupported("dilations %v: only 2-D windows are supported", d)
		}
		g.dh, g.dw = int(d[0]), int(d[1])
	}
	if g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 {
		return g, unsupported("strides and dilations must be positive")
	}
	eh, ew := g.dh*(kh-1)+1, g.dw*(kw-1)+1
	switch autoPad := attrString(node, "auto_pad", "NOTSET"); autoPad {
	case "NOTSET", "":
		if pads, ok := attrInts(node, "pads"); ok {
			if len(pads) != 4 {
				return g, unsupported("pads %v: only 2-D windows are supported", pads)
			}
			g.top, g.left, g.bottom, g.right = int(pads[0]), int(pads[1]), int(pads[2]), int(pads[3])
		}
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		oh, ow := (h+g.sh-1)/g.sh, (w+g.sw-1)/g.sw
		ph, pw := max(0, (oh-1)*g.sh+eh-h), max(0, (ow-1)*g.sw+ew-w)
		g.top, g.left = ph/2, pw/2
		if autoPad == "SAME_LOWER" {
			g.top, g.left = ph-ph/2, pw-pw/2
		}
		g.bottom, g.right = ph-g.top, pw-g.left
	default:
		return g, unsupported("auto_pad %q is not supported", autoPad)
	}
	if g.top < 0 || g.left < 0 || g.bottom < 0 || g.right < 0 {
		return g, unsupported("negative pads")
	}
	outSize := func(in, lo, hi, extent, stride int) int {
		span := in + lo + hi - extent
		if span < 0 {
			return 0
		}
		if !ceil {
			return span/stride + 1
		}
		o := (span+stride-1)/stride + 1
		// The last window must start inside the input or its left padding.
		if (o-1)*stride >= in+lo {
			o--
		}
		return o
	}
	g.oh, g.ow = outSize(h, g.top, g.bottom, eh, g.sh), outSize(w, g.left, g.right, ew, g.sw)
	if g.oh < 1 || g.ow < 1 {
		return g, unsupported("a %dx%d window does not fit a %dx%d input", kh, kw, h, w)
	}
	return g, nil
}

// cols returns the range [lo, hi) of output columns whose input column
// ox*sw - left + off lies inside the input.
func (g *window) cols(off int) (lo, hi int) {
	lo, hi = 0, g.ow
	for lo < hi && lo*g.sw-g.left+off < 0 {
		lo++
	}
	for hi > lo && (hi-1)*g.sw-g.left+off >= g.w {
		hi--
	}
	return lo, hi
}

// epilogue is what a convolution applies to its output after the GEMM: bias,
// a residual and an activation, in one pass.
type epilogue[T Float] struct {
	bias     []T
	residual []T
	act      activation
}

func (e *epilogue[T]) empty() bool { return e.bias == nil && e.residual == nil && e.act.kind == "" }

// conv plans Conv, fusing into it a BatchNormalization, a residual Add and an
// activation that follow it, each only when the previous output has no other reader.
func (p *planner[T]) conv(i int, node *onnx.Node) error {
	x, err := p.floatIn(node, 0)
	if err != nil {
		return err
	}
	wv, err := p.floatIn(node, 1)
	if err != nil {
		return err
	}
	if !wv.static {
		return unsupported("weights computed at run time are not supported")
	}
	xs, ws := x.t.shape, wv.t.shape
	if len(xs) != 4 || len(ws) != 4 {
		return unsupported("input %v and weights %v: only 2-D convolutions are supported", xs, ws)
	}
	group := int(attrInt(node, "group", 1))
	n, c, h, w := xs[0], xs[1], xs[2], xs[3]
	m, cg, kh, kw := ws[0], ws[1], ws[2], ws[3]
	if group < 1 || c%group != 0 || m%group != 0 || c/group != cg {
		return unsupported("input has %d channels, weights %v, group %d: they do not match", c, ws, group)
	}
	if k, ok := attrInts(node, "kernel_shape"); ok && (len(k) != 2 || int(k[0]) != kh || int(k[1]) != kw) {
		return unsupported("kernel_shape %v differs from the weights' %dx%d", k, kh, kw)
	}
	g, err := windowOf(node, kh, kw, h, w, false)
	if err != nil {
		return err
	}
	weights := wv.t.data // copied before BatchNormalization is folded in
	var e epilogue[T]
	if optional(node, 2) {
		b, err := p.floatIn(node, 2)
		if err != nil {
			return err
		}
		if !b.static || len(b.t.data) != m {
			return unsupported("bias must be a constant of %d values", m)
		}
		e.bias = slices.Clone(b.t.data) // the epilogue may fold BatchNormalization in
	}
	outShape := []int{n, m, g.oh, g.ow}
	outName := node.Outputs[0]

	// Fuse what follows, as long as each value has a single reader.
	fusedBN, fusedAdd := false, false
	for {
		k, next := p.soleConsumer(outName)
		if next == nil || p.prog.logits == outName {
			break
		}
		if next.OpType == "BatchNormalization" && !fusedBN && !fusedAdd && e.act.kind == "" {
			scale, shift, err := p.batchNormAffine(next)
			if err != nil || len(scale) != m {
				break
			}
			per := len(weights) / m
			weights = slices.Clone(weights)
			if e.bias == nil {
				e.bias = make([]T, m)
			}
			for o := 0; o < m; o++ {
				for j := o * per; j < (o+1)*per; j++ {
					weights[j] *= scale[o]
				}
				e.bias[o] = e.bias[o]*scale[o] + shift[o]
			}
			fusedBN = true
		} else if next.OpType == "Add" && !fusedAdd && e.act.kind == "" && len(next.Inputs) == 2 {
			other := next.Inputs[0]
			if other == outName {
				other = next.Inputs[1]
			}
			r, ok := p.values[other]
			if !ok {
				if r, _ = p.lookup(other); r == nil {
					break
				}
			}
			if other == outName || r.isInt {
				break
			}
			if perChannel := channelBias(r, m); r.static && perChannel != nil {
				// A bias added by its own node (mnist-7's Plus): fold it in.
				if e.bias == nil {
					e.bias = make([]T, m)
				}
				for o := range e.bias {
					e.bias[o] += perChannel[o]
				}
			} else if r.static || !slices.Equal(r.t.shape, outShape) {
				break
			} else {
				e.residual = r.t.data
				fusedAdd = true
			}
		} else if act, ok := p.activationOf(next); ok && e.act.kind == "" {
			e.act = act
		} else {
			break
		}
		p.skip[k] = true
		outName = next.Outputs[0]
	}
	out := newTensor[T](outShape)
	p.values[outName] = &value[T]{t: out}

	src := x.t.data
	dst := out.data
	mg := m / group
	kdim := cg * kh * kw
	ohw := g.oh * g.ow
	pointwise := kh == 1 && kw == 1 && g.sh == 1 && g.sw == 1 && g.top == 0 && g.left == 0 && g.bottom == 0 && g.right == 0
	depthwise := cg == 1 && mg == 1
	var col []T
	var cols *colPlan
	if wide := !pointwise && !depthwise && useWide(&g, mg); wide {
		wc := newWideConv(&g)
		xp, col, out := make([]T, wc.padded(&g, cg)), make([]T, kdim*wc.n), make([]T, m*wc.n)
		p.add(func() {
			for b := 0; b < n; b++ {
				xb, yb := src[b*c*h*w:(b+1)*c*h*w], dst[b*m*ohw:(b+1)*m*ohw]
				for gi := 0; gi < group; gi++ {
					wideCols(&g, &wc, xb[gi*cg*h*w:(gi+1)*cg*h*w], cg, xp, col)
					gemm(false, false, mg, wc.n, kdim, weights[gi*mg*kdim:], kdim, col, wc.n, 0, out[gi*mg*wc.n:], wc.n)
				}
				var res []T
				if e.residual != nil {
					res = e.residual[b*m*ohw : (b+1)*m*ohw]
				}
				finishWide(yb, out, m, g.oh, g.ow, wc.pw, &e, res)
			}
		})
		return nil
	}
	if !pointwise && !depthwise {
		cols = newColPlan(&g)
		if cols.rows > 0 { // else every output is the bias: a zero column matrix
			weights = dropTaps(weights, m, cg, kh*kw, cols)
			kdim = cg * cols.rows
		}
		col = make([]T, kdim*ohw)
	}
	var padded []T // one channel's padded plane (depthwise3x3)
	if depthwise {
		padded = make([]T, (h+g.top+g.bottom)*(w+g.left+g.right))
	}
	p.add(func() {
		for b := 0; b < n; b++ {
			xb, yb := src[b*c*h*w:(b+1)*c*h*w], dst[b*m*ohw:(b+1)*m*ohw]
			switch {
			case depthwise:
				depthwiseConv(&g, xb, weights, yb, c, padded)
			default:
				for gi := 0; gi < group; gi++ {
					xg := xb[gi*cg*h*w : (gi+1)*cg*h*w]
					rhs := xg
					if !pointwise {
						im2col(cols, xg, cg, col)
						rhs = col
					}
					gemm(false, false, mg, ohw, kdim, weights[gi*mg*kdim:], kdim, rhs, ohw, 0, yb[gi*mg*ohw:], ohw)
				}
			}
			if !e.empty() {
				var res []T
				if e.residual != nil {
					res = e.residual[b*m*ohw : (b+1)*m*ohw]
				}
				finish(yb, m, ohw, &e, res)
			}
		}
	})
	return nil
}

// channelBias returns v's values when v holds one value per output channel of an
// m-channel NCHW tensor (shape m x 1 x 1, 1 x m x 1 x 1, ...), else nil.
func channelBias[T Float](v *value[T], m int) []T {
	shape := v.t.shape
	if len(v.t.data) != m || len(shape) < 3 || len(shape) > 4 {
		return nil
	}
	if shape[len(shape)-1] != 1 || shape[len(shape)-2] != 1 || shape[len(shape)-3] != m {
		return nil
	}
	return v.t.data
}

// finish applies the epilogue to one example's m x ohw output, in place.
func finish[T Float](y []T, m, ohw int, e *epilogue[T], res []T) {
	for o := 0; o < m; o++ {
		row := y[o*ohw : (o+1)*ohw]
		var r []T
		if res != nil {
			r = res[o*ohw : (o+1)*ohw]
		}
		e.channel(o, row, row, r, 1, ohw, ohw)
	}
}

// finishWide applies the epilogue while copying a wide output (m x oh x pw, see
// wideConv) into the m x oh x ow output y.
func finishWide[T Float](y, wide []T, m, oh, ow, pw int, e *epilogue[T], res []T) {
	for o := 0; o < m; o++ {
		at := o * oh * ow
		var r []T
		if res != nil {
			r = res[at : at+oh*ow]
		}
		e.channel(o, y[at:at+oh*ow], wide[o*oh*pw:(o+1)*oh*pw], r, oh, ow, pw)
	}
}

// channel writes output channel o: lines lines of width values, src's pitch
// apart in src, back to back in dst (which may be src when the pitch is the
// width), each value plus the bias, plus the residual r (when not nil, laid out
// as dst), through the activation, in one pass. Every path rounds as (src + bias)
// + residual, then the activation. ReLU is max(v, 0), which compiles without a
// branch: a conv's outputs change sign at random and the branch mispredicted on
// half of them.
func (e *epilogue[T]) channel(o int, dst, src, r []T, lines, width, pitch int) {
	var b T
	if e.bias != nil {
		b = e.bias[o]
	}
	relu := e.act.kind == "Relu"
	for l := 0; l < lines; l++ {
		d, s := dst[l*width:(l+1)*width], src[l*pitch:l*pitch+width]
		switch {
		case relu && r == nil:
			for i, v := range s {
				d[i] = max(v+b, 0)
			}
		case relu:
			rl := r[l*width : (l+1)*width]
			for i, v := range s {
				d[i] = max(v+b+rl[i], 0)
			}
		case e.act.kind == "Clip" && r == nil:
			// MobileNet's ReLU6.
			lo, hi := T(e.act.min), T(e.act.max)
			for i, v := range s {
				d[i] = min(max(v+b, lo), hi)
			}
		default:
			if pitch != width {
				copy(d, s)
			}
			if e.bias != nil {
				for i := range d {
					d[i] += b
				}
			}
			if r != nil {
				rl := r[l*width : (l+1)*width]
				for i := range d {
					d[i] += rl[i]
				}
			}
			applyActivation(e.act, d)
		}
	}
}

// wideConv is the layout of a stride-1 convolution computed on the padded
// input's full width. With the input copied once into a zero-padded plane of
// ph x pw, the column row of each kernel tap over an oh x pw output grid is one
// contiguous stretch of that plane, so im2col is one copy per row instead of one
// per output line; the GEMM computes (kw-1)*dw extra columns per output row,
// which finishWide drops. On 32 px models, where output lines are 8 to 32 values
// long, the short copies cost more than the extra columns (BENCHMARKS.md); where
// the weights are many (M large), they do not, and plain im2col is used (useWide).
type wideConv struct {
	ph, pw int
	// n is the GEMM's column count, oh*pw.
	n int
}

// useWide reports whether a stride-1 convolution with mg output channels per
// group should use the wide layout. Per output line it saves cg*kh*kw short
// copies and costs mg*cg*kh*kw multiply-adds for each of its (kw-1)*dw extra
// columns: worth it while mg*(kw-1)*dw stays small (a bound set by measuring
// the models of BENCHMARKS.md).
func useWide(g *window, mg int) bool {
	return g.sh == 1 && g.sw == 1 && mg*(g.kw-1)*g.dw <= 128
}

func newWideConv(g *window) wideConv {
	ph, pw := g.h+g.top+g.bottom, g.w+g.left+g.right
	return wideConv{ph: ph, pw: pw, n: g.oh * pw}
}

// padded is the size of the zero-padded input buffer for cg channels: the last
// rows of the last tap read (kw-1)*dw values past the last plane, into columns
// that are dropped.
func (wc *wideConv) padded(g *window, cg int) int { return cg*wc.ph*wc.pw + (g.kw-1)*g.dw }

// wideCols copies one group's input (cg x h x w) into the interior of the padded
// buffer xp, whose border stays zero from allocation, and lays out the
// (cg*kh*kw) x n column matrix from it, one copy per row.
func wideCols[T Float](g *window, wc *wideConv, x []T, cg int, xp, col []T) {
	h, w, pw := g.h, g.w, wc.pw
	plane := wc.ph * pw
	for c := 0; c < cg; c++ {
		in := x[c*h*w : (c+1)*h*w]
		out := xp[c*plane : (c+1)*plane]
		for iy := 0; iy < h; iy++ {
			at := (iy+g.top)*pw + g.left
			copyLine(out[at:at+w], in[iy*w:(iy+1)*w])
		}
	}
	row := 0
	for c := 0; c < cg; c++ {
		for ky := 0; ky < g.kh; ky++ {
			for kx := 0; kx < g.kw; kx++ {
				from := c*plane + ky*g.dh*pw + kx*g.dw
				copy(col[row*wc.n:(row+1)*wc.n], xp[from:from+wc.n])
				row++
			}
		}
	}
}

// colPlan is where im2col copies the input from, worked out once per
// convolution: one span per output line of each kernel tap, the same for every
// channel. On the small planes of 32 px models (8x8 to 32x32) a line is 8 to 32
// values, and computing the window's bounds on every call was what im2col cost.
type colPlan struct {
	spans []colSpan
	// stride is the input step between a line's values (the window's column stride).
	stride int
	// rows is the number of column rows per channel: the kernel taps (ky*kw+kx)
	// that read the input for some output, taps; in and out are one channel's
	// input (h*w) and column row (oh*ow) sizes.
	rows, in, out int
	taps          []int
}

// colSpan copies n input values, stride apart from src, to dst onwards.
type colSpan struct{ dst, src, n int }

func newColPlan(g *window) *colPlan {
	pl := &colPlan{stride: g.sw, in: g.h * g.w, out: g.oh * g.ow}
	for ky := 0; ky < g.kh; ky++ {
		offY := ky*g.dh - g.top
		for kx := 0; kx < g.kw; kx++ {
			offX := kx * g.dw
			lo, hi := g.cols(offX)
			start := len(pl.spans)
			for oy := 0; oy < g.oh && lo < hi; oy++ {
				iy := oy*g.sh + offY
				if iy < 0 || iy >= g.h {
					continue
				}
				pl.spans = append(pl.spans, colSpan{
					dst: pl.rows*pl.out + oy*g.ow + lo,
					src: iy*g.w + lo*g.sw - g.left + offX,
					n:   hi - lo,
				})
			}
			if len(pl.spans) > start {
				pl.taps = append(pl.taps, ky*g.kw+kx)
				pl.rows++
			}
		}
	}
	return pl
}

// dropTaps returns the weights (m x cg x kh*kw) of only the taps pl keeps, when
// some tap reads nothing but padding for every output: the 3x3 convolutions of a
// 1x1 plane (resnet18's last stage at 32 px) keep one tap in nine, and their
// matrix-vector products read a ninth of the weights. Each output's sum loses
// only products with zero.
func dropTaps[T Float](weights []T, m, cg, taps int, pl *colPlan) []T {
	if len(pl.taps) == taps {
		return weights
	}
	out := make([]T, 0, m*cg*len(pl.taps))
	for row := 0; row < m*cg; row++ {
		for _, t := range pl.taps {
			out = append(out, weights[row*taps+t])
		}
	}
	return out
}

// im2col lays one group's input (cg x h x w) out as the (cg*kh*kw) x (oh*ow)
// matrix whose product with the weights is the convolution. It writes only the
// entries that read the input: col must hold zeros wherever the window lies in
// the padding, which stays true from one call to the next (each convolution owns
// its column buffer, allocated zeroed), so the border is never cleared again.
func im2col[T Float](pl *colPlan, x []T, cg int, col []T) {
	for c := 0; c < cg; c++ {
		plane := x[c*pl.in : (c+1)*pl.in]
		rows := col[c*pl.rows*pl.out : (c+1)*pl.rows*pl.out]
		if pl.stride == 1 {
			for _, s := range pl.spans {
				copyLine(rows[s.dst:s.dst+s.n], plane[s.src:s.src+s.n])
			}
			continue
		}
		for _, s := range pl.spans {
			stridedLine(rows[s.dst:s.dst+s.n], plane[s.src:s.src+(s.n-1)*pl.stride+1], pl.stride)
		}
	}
}

// copyLine is copy, with a plain loop for the short lines where calling memmove
// costs more than the copy.
func copyLine[T Float](dst, src []T) {
	if len(dst) > 16 {
		copy(dst, src)
		return
	}
	src = src[:len(dst)]
	for i := range dst {
		dst[i] = src[i]
	}
}

func stridedLine[T Float](dst, src []T, stride int) {
	for i := range dst {
		dst[i] = src[i*stride]
	}
}

// depthwiseConv convolves each of c channels with its own kernel, accumulating
// shifted rows of the input into the output (no column matrix). 3x3 kernels
// (MobileNet's) take depthwise3x3, with padded a buffer for one padded plane.
func depthwiseConv[T Float](g *window, x, weights, y []T, c int, padded []T) {
	ohw := g.oh * g.ow
	for ch := 0; ch < c; ch++ {
		plane := x[ch*g.h*g.w : (ch+1)*g.h*g.w]
		out := y[ch*ohw : (ch+1)*ohw]
		clear(out)
		k := weights[ch*g.kh*g.kw : (ch+1)*g.kh*g.kw]
		if g.kh == 3 && g.kw == 3 && g.dh == 1 && g.dw == 1 {
			depthwise3x3(g, plane, (*[9]T)(k), out, padded)
			continue
		}
		for ky := 0; ky < g.kh; ky++ {
			for kx := 0; kx < g.kw; kx++ {
				wv := k[ky*g.kw+kx]
				offX := kx * g.dw
				lo, hi := g.cols(offX)
				if lo >= hi {
					continue
				}
				for oy := 0; oy < g.oh; oy++ {
					iy := oy*g.sh - g.top + ky*g.dh
					if iy < 0 || iy >= g.h {
						continue
					}
					line := out[oy*g.ow : (oy+1)*g.ow]
					in := plane[iy*g.w:]
					start := lo*g.sw - g.left + offX
					if g.sw == 1 {
						src := in[start : start+hi-lo]
						dst := line[lo:hi]
						for i := range dst {
							dst[i] += wv * src[i]
						}
						continue
					}
					for ox, ix := lo, start; ox < hi; ox, ix = ox+1, ix+g.sw {
						line[ox] += wv * in[ix]
					}
				}
			}
		}
	}
}

// depthwise3x3 convolves one h x w plane with one 3x3 kernel, each output value
// summed in registers over its nine taps rather than accumulated through the
// output nine times. A padded window reads the plane copied into padded (ph x pw,
// its border zero from allocation), so every window lies inside: on MobileNet's
// small late planes most windows touch the padding. Each value adds its taps row
// by row from zero, as the general kernel does (the padding's zero products
// change at most the sign of a zero sum).
func depthwise3x3[T Float](g *window, plane []T, k *[9]T, out, padded []T) {
	w, pw := g.w, g.w
	if g.top|g.left|g.bottom|g.right != 0 {
		pw = g.w + g.left + g.right
		for iy := 0; iy < g.h; iy++ {
			at := (iy+g.top)*pw + g.left
			copyLine(padded[at:at+w], plane[iy*w:(iy+1)*w])
		}
		plane = padded
	}
	ow := g.ow
	for oy := 0; oy < g.oh; oy++ {
		y0 := oy * g.sh
		dw3Line(out[oy*ow:(oy+1)*ow], plane[y0*pw:(y0+1)*pw], plane[(y0+1)*pw:(y0+2)*pw], plane[(y0+2)*pw:(y0+3)*pw], k, g.sw)
	}
}

// dw3Line computes line[i] over the 3x3 window whose top-left input is
// r0[i*sw], with r1 and r2 the next two input rows. Two outputs at a time: each
// sum is a chain of nine dependent additions, and interleaving two chains lets
// the CPU overlap their latencies without changing either sum's order.
//
//go:noinline
func dw3Line[T Float](line, r0, r1, r2 []T, k *[9]T, sw int) {
	k0, k1, k2, k3, k4, k5, k6, k7, k8 := k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]
	i := 0
	for ; i+1 < len(line); i += 2 {
		x, y := i*sw, (i+1)*sw
		a, b, c := r0[x:x+3], r1[x:x+3], r2[x:x+3]
		d, e, f := r0[y:y+3], r1[y:y+3], r2[y:y+3]
		var p, q T
		p += k0 * a[0]
		q += k0 * d[0]
		p += k1 * a[1]
		q += k1 * d[1]
		p += k2 * a[2]
		q += k2 * d[2]
		p += k3 * b[0]
		q += k3 * e[0]
		p += k4 * b[1]
		q += k4 * e[1]
		p += k5 * b[2]
		q += k5 * e[2]
		p += k6 * c[0]
		q += k6 * f[0]
		p += k7 * c[1]
		q += k7 * f[1]
		p += k8 * c[2]
		q += k8 * f[2]
		line[i], line[i+1] = p, q
	}
	for ; i < len(line); i++ {
		x := i * sw
		a, b, c := r0[x:x+3], r1[x:x+3], r2[x:x+3]
		var acc T
		acc += k0 * a[0]
		acc += k1 * a[1]
		acc += k2 * a[2]
		acc += k3 * b[0]
		acc += k4 * b[1]
		acc += k5 * b[2]
		acc += k6 * c[0]
		acc += k7 * c[1]
		acc += k8 * c[2]
		line[i] = acc
	}
}

// pool plans MaxPool and AveragePool.
func (p *planner[T]) pool(node *onnx.Node) error {
	x, err := p.floatIn(node, 0)
	if err != nil {
		return err
	}
	if len(node.Outputs) > 1 && node.Outputs[1] != "" {
		return unsupported("the Indices output of MaxPool is not supported")
	}
	xs := x.t.shape
	k, _ := attrInts(node, "kernel_shape")
	if len(xs) != 4 || len(k) != 2 {
		return unsupported("input %v, kernel_shape %v: only 2-D pooling is supported", xs, k)
	}
	if attrInt(node, "storage_order", 0) != 0 {
		return unsupported("storage_order 1 is not supported")
	}
	g, err := windowOf(node, int(k[0]), int(k[1]), xs[2], xs[3], attrInt(node, "ceil_mode", 0) != 0)
	if err != nil {
		return err
	}
	isMax := node.OpType == "MaxPool"
	if !isMax && (g.dh != 1 || g.dw != 1) {
		return unsupported("dilated AveragePool is not supported")
	}
	includePad := attrInt(node, "count_include_pad", 0) != 0
	planes := xs[0] * xs[1]
	out := p.output(node, 0, []int{xs[0], xs[1], g.oh, g.ow}, nil, 0)
	src, dst := x.t.data, out.data
	var colMax []T
	if isMax {
		colMax = make([]T, g.w)
	}
	p.add(func() {
		for pl := 0; pl < planes; pl++ {
			in := src[pl*g.h*g.w : (pl+1)*g.h*g.w]
			o := dst[pl*g.oh*g.ow : (pl+1)*g.oh*g.ow]
			if isMax {
				maxPool(&g, in, o, colMax)
				continue
			}
			for oy := 0; oy < g.oh; oy++ {
				y0 := oy*g.sh - g.top
				for ox := 0; ox < g.ow; ox++ {
					x0 := ox*g.sw - g.left
					// PyTorch's divisor: the window clipped to the padded input,
					// or to the input itself without count_include_pad.
					y1, x1 := min(y0+g.kh, g.h+g.bottom), min(x0+g.kw, g.w+g.right)
					divisor := (y1 - y0) * (x1 - x0)
					ya, xa, yb, xb := max(y0, 0), max(x0, 0), min(y1, g.h), min(x1, g.w)
					if !includePad {
						divisor = (yb - ya) * (xb - xa)
					}
					var sum T
					for iy := ya; iy < yb; iy++ {
						for _, v := range in[iy*g.w+xa : iy*g.w+xb] {
							sum += v
						}
					}
					o[oy*g.ow+ox] = sum / T(divisor)
				}
			}
		}
	})
	return nil
}

// maxPool takes the maximum over each window of one h x w plane, separably: for
// each output row, the maximum down the window's input rows into colMax (w
// values), then across each window's columns of it. Go's max on floats is a
// five-instruction sequence (NaN and signed zeros), and one chain of them per
// window was a dependency chain the CPU could not overlap; going down the rows,
// every column is independent. Go's max is commutative and associative, NaN and
// signed zeros included, so the order gives what the window's definition gives.
// A window wholly in the padding gives -Inf. The loops live in small functions
// of their own: inlined into one, their counters were spilled to the stack.
func maxPool[T Float](g *window, in, out, colMax []T) {
	h, w, ow := g.h, g.w, g.ow
	colMax = colMax[:w]
	// Interior outputs [ox0, ox1): windows wholly inside the row.
	ox0, ox1 := min((g.left+g.sw-1)/g.sw, ow), ow
	for ox1 > ox0 && (ox1-1)*g.sw-g.left+(g.kw-1)*g.dw >= w {
		ox1--
	}
	for oy := 0; oy < g.oh; oy++ {
		y0 := oy*g.sh - g.top
		rows := 0
		for ky := 0; ky < g.kh; ky++ {
			if iy := y0 + ky*g.dh; iy >= 0 && iy < h {
				if rows == 0 {
					copy(colMax, in[iy*w:(iy+1)*w])
				} else {
					maxInto(colMax, in[iy*w:(iy+1)*w])
				}
				rows++
			}
		}
		line := out[oy*ow : (oy+1)*ow]
		if rows == 0 {
			for ox := range line {
				line[ox] = T(math.Inf(-1))
			}
			continue
		}
		if ox0 < ox1 {
			maxAcross(line[ox0:ox1], colMax[ox0*g.sw-g.left:], g.sw, g.kw, g.dw)
		}
		for ox := range line {
			if ox >= ox0 && ox < ox1 {
				continue
			}
			m, x0 := T(math.Inf(-1)), ox*g.sw-g.left
			for kx := 0; kx < g.kw; kx++ {
				if ix := x0 + kx*g.dw; ix >= 0 && ix < w {
					m = max(m, colMax[ix])
				}
			}
			line[ox] = m
		}
	}
}

// maxInto sets acc to the elementwise maximum of acc and r.
//
//go:noinline
func maxInto[T Float](acc, r []T) {
	r = r[:len(acc)]
	for x, v := range r {
		acc[x] = max(acc[x], v)
	}
}

// maxAcross sets each line[i] to the maximum of the kw values of c from i*sw,
// dw apart; every window lies inside c.
//
//go:noinline
func maxAcross[T Float](line, c []T, sw, kw, dw int) {
	if kw == 2 && dw == 1 {
		for i := range line {
			line[i] = max(c[i*sw], c[i*sw+1])
		}
		return
	}
	if kw == 3 && dw == 1 {
		for i := range line {
			x := i * sw
			line[i] = max(max(c[x], c[x+1]), c[x+2])
		}
		return
	}
	for i := range line {
		x := i * sw
		m := c[x]
		for kx := 1; kx < kw; kx++ {
			m = max(m, c[x+kx*dw])
		}
		line[i] = m
	}
}

func (p *planner[T]) globalPool(node *onnx.Node) error {
	x, err := p.floatIn(node, 0)
	if err != nil {
		return err
	}
	xs := x.t.shape
	if len(xs) < 3 {
		return unsupported("input %v has no spatial axes", xs)
	}
	shape := slices.Clone(xs)
	for i := 2; i < len(shape); i++ {
		shape[i] = 1
	}
	planes, area := xs[0]*xs[1], size(xs[2:])
	out := p.output(node, 0, shape, nil, 0)
	src, dst := x.t.data, out.data
	isMax := node.OpType == "GlobalMaxPool"
	p.add(func() {
		for pl := 0; pl < planes; pl++ {
			in := src[pl*area : (pl+1)*area]
			if isMax {
				dst[pl] = slices.Max(in)
				continue
			}
			var sum T
			for _, v := range in {
				sum += v
			}
			dst[pl] = sum / T(area)
		}
	})
	return nil
}
