package fragile

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// RenderTriggers draws the bundle's triggers as a grid, each tile captioned with its
// key label, columns tiles per row. Inputs of shape CxHxW with C = 1 (grey) or 3
// (RGB), or flat inputs whose size is a square, can be drawn.
func RenderTriggers(b *Bundle, columns int) (image.Image, error) {
	channels, h, w, err := imageLayout(b.InputShape)
	if err != nil {
		return nil, err
	}
	scale := max(1, 56/max(h, w)) // small inputs are enlarged to at least 56 pixels
	const caption, pad = 14, 4
	tileW, tileH := w*scale+pad, h*scale+caption+pad
	n := b.Len()
	rows := (n + columns - 1) / columns
	img := image.NewRGBA(image.Rect(0, 0, columns*tileW+pad, rows*tileH+pad))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	level := func(v float32) uint8 {
		f := (float64(v) - b.InputMin) / (b.InputMax - b.InputMin)
		return uint8(math.Round(255 * math.Max(0, math.Min(1, f))))
	}
	for i := 0; i < n; i++ {
		x0, y0 := pad+(i%columns)*tileW, pad+(i/columns)*tileH
		t := b.Trigger(i)
		for y := 0; y < h*scale; y++ {
			for x := 0; x < w*scale; x++ {
				p := (y/scale)*w + x/scale
				c := color.RGBA{A: 255}
				if channels == 1 {
					c.R = level(t[p])
					c.G, c.B = c.R, c.R
				} else {
					c.R, c.G, c.B = level(t[p]), level(t[h*w+p]), level(t[2*h*w+p])
				}
				img.Set(x0+x, y0+y, c)
			}
		}
		d := font.Drawer{Dst: img, Src: image.Black, Face: basicfont.Face7x13,
			Dot: fixed.P(x0, y0+h*scale+caption-3)}
		d.DrawString(strconv.Itoa(b.KeyLabels[i]))
	}
	return img, nil
}

func imageLayout(shape []int) (channels, h, w int, err error) {
	switch {
	case len(shape) == 3 && (shape[0] == 1 || shape[0] == 3):
		return shape[0], shape[1], shape[2], nil
	case len(shape) == 1:
		side := int(math.Sqrt(float64(shape[0])))
		if side*side == shape[0] {
			return 1, side, side, nil
		}
	}
	return 0, 0, 0, fmt.Errorf("cannot draw inputs of shape %v as images", shape)
}
