package fragile_test

import (
	"image"
	"image/color"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

// flatBundle has n triggers of the given shape, trigger i filled with the value
// levels[i] (in the input range [0, 10]).
func flatBundle(shape []int, levels []float32, labels []int) *fragile.Bundle {
	b := &fragile.Bundle{InputShape: shape, InputMin: 0, InputMax: 10, Classes: 10, KeyLabels: labels}
	for _, v := range levels {
		for j := 0; j < b.InputSize(); j++ {
			b.Triggers = append(b.Triggers, v)
		}
		b.Margins = append(b.Margins, 1)
	}
	return b
}

func countColours(img image.Image) map[color.RGBA]int {
	counts := map[color.RGBA]int{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, ca := img.At(x, y).RGBA()
			counts[color.RGBA{uint8(cr >> 8), uint8(cg >> 8), uint8(cb >> 8), uint8(ca >> 8)}]++
		}
	}
	return counts
}

func grey(v uint8) color.RGBA { return color.RGBA{v, v, v, 255} }

var (
	white = grey(255)
	black = grey(0)
)

func TestRenderTriggers(t *testing.T) {
	// Five 8x8 grey triggers at distinct levels (2, 4, 5, 6, 8 of 10), none black or
	// white, so every black pixel belongs to a caption.
	levels := []float32{2, 4, 5, 6, 8}
	want := []uint8{51, 102, 128, 153, 204} // round(255 * level / 10)
	b := flatBundle([]int{1, 8, 8}, levels, []int{1, 7, 3, 9, 0})
	img, err := fragile.RenderTriggers(b, 3)
	if err != nil {
		t.Fatal(err)
	}
	counts := countColours(img)
	// Each trigger is enlarged by an integer factor to at least 56 pixels a side.
	area := counts[grey(want[0])]
	scale := 0
	for s := 7; s*s*64 <= area; s++ {
		if s*s*64 == area {
			scale = s
		}
	}
	if scale == 0 {
		t.Fatalf("trigger 0 covers %d pixels: not an 8x8 image enlarged to >= 56 pixels", area)
	}
	for i, g := range want {
		if counts[grey(g)] != area {
			t.Errorf("trigger %d (grey %d) covers %d pixels, want %d", i, g, counts[grey(g)], area)
		}
	}
	// A grid of 3 columns, 2 rows, room for one caption line (13 pixels) under each.
	side := 8 * scale
	if w := img.Bounds().Dx(); w < 3*side || w > 3*(side+20) {
		t.Errorf("width %d for 3 columns of %d pixels", w, side)
	}
	if h := img.Bounds().Dy(); h < 2*(side+13) || h > 2*(side+13+20) {
		t.Errorf("height %d for 2 rows of %d pixels and a caption", h, side)
	}
	// The rest is white background and black caption text.
	if counts[black] == 0 {
		t.Error("no caption pixels")
	}
	if counts[white]+counts[black]+5*area != img.Bounds().Dx()*img.Bounds().Dy() {
		t.Errorf("pixels other than triggers, white and black: %v", counts)
	}

	// Other labels draw other captions over the same triggers.
	relabelled, err := fragile.RenderTriggers(flatBundle([]int{1, 8, 8}, levels, []int{4, 4, 4, 4, 4}), 3)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != relabelled.Bounds() {
		t.Fatal("labels changed the image size")
	}
	differ := 0
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if img.At(x, y) != relabelled.At(x, y) {
				differ++
			}
		}
	}
	if differ == 0 {
		t.Error("the captions do not depend on the labels")
	}
}

func TestRenderTriggersMNIST7(t *testing.T) {
	w := mnistWatermark(t)
	img, err := fragile.RenderTriggers(w.bundle, 10)
	if err != nil {
		t.Fatal(err)
	}
	// 100 triggers of 28x28 in a 10x10 grid, each at least 56 pixels a side plus a caption.
	if dx, dy := img.Bounds().Dx(), img.Bounds().Dy(); dx < 10*56 || dx > 10*(56+20) || dy < 10*(56+13) || dy > 10*(56+13+20) {
		t.Errorf("image %dx%d", dx, dy)
	}
}

func TestRenderTriggersColourAndFlat(t *testing.T) {
	// An RGB trigger: red channel at the maximum, green at the minimum, blue at 5/10.
	rgb := &fragile.Bundle{InputShape: []int{3, 4, 4}, InputMin: 0, InputMax: 10, Classes: 2, KeyLabels: []int{1}, Margins: []float32{1}}
	for _, v := range []float32{10, 0, 5} {
		for j := 0; j < 16; j++ {
			rgb.Triggers = append(rgb.Triggers, v)
		}
	}
	img, err := fragile.RenderTriggers(rgb, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n := countColours(img)[color.RGBA{255, 0, 128, 255}]; n == 0 || n%16 != 0 {
		t.Errorf("%d pixels of the trigger's colour", n)
	}

	// A flat input of a square size is drawn as a square; values outside the range
	// are clamped (here above the maximum: white).
	flat := flatBundle([]int{16}, []float32{3, 99}, []int{0, 1})
	img, err = fragile.RenderTriggers(flat, 2)
	if err != nil {
		t.Fatalf("flat 16: %v", err)
	}
	if n := countColours(img)[grey(77)]; n == 0 || n%16 != 0 { // round(255 * 0.3)
		t.Errorf("%d pixels of the flat trigger's grey", n)
	}

	for _, shape := range [][]int{{2, 4, 4}, {15}, {1, 1, 4, 4}, {4, 4}} {
		b := flatBundle(shape, []float32{1}, []int{0})
		if _, err := fragile.RenderTriggers(b, 1); err == nil {
			t.Errorf("shape %v: no error", shape)
		}
	}
}
