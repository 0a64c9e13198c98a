package dataset

import (
	"fmt"
	"os"
)

// CIFAR-10's geometry: 32x32 colour images in ten classes, one label byte then the
// red, green and blue planes, each row-major.
const (
	cifarSide    = 32
	cifarClasses = 10
	cifarRecord  = 1 + 3*cifarSide*cifarSide
)

// maxCIFARBytes bounds the file CIFAR10Binary reads (the five training batches of the
// original release together take 154 MB).
const maxCIFARBytes = 1 << 28

// CIFAR10Binary loads a file in the CIFAR-10 binary layout (the layout of the
// original data_batch_*.bin files and of ../shared/realmodels' cifar10_from_vnncomp.bin):
// records of one label byte (0-9) then 3072 pixel bytes, the R, G and B planes of
// 32x32, row-major. The set has shape {3, 32, 32}, values v/255 and the file's order.
// A file whose length is not a whole number of records, or a label above 9, gives an
// error naming the file and the record.
func CIFAR10Binary(path string) (*Set, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if info.Size() > maxCIFARBytes {
		return nil, fmt.Errorf("dataset: %s: %d bytes, more than the %d this loader reads", path, info.Size(), maxCIFARBytes)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if len(raw) == 0 || len(raw)%cifarRecord != 0 {
		return nil, fmt.Errorf("dataset: %s: %d bytes is not a whole number of %d-byte CIFAR-10 records (one label byte, 3072 pixel bytes)", path, len(raw), cifarRecord)
	}
	n := len(raw) / cifarRecord
	s := &Set{Images: make([]float32, 0, n*(cifarRecord-1)), Labels: make([]int, n), Shape: []int{3, cifarSide, cifarSide}, Classes: cifarClasses}
	for i := range n {
		rec := raw[i*cifarRecord : (i+1)*cifarRecord]
		if int(rec[0]) >= cifarClasses {
			return nil, fmt.Errorf("dataset: %s: record %d has label %d, CIFAR-10 has classes 0-9", path, i, rec[0])
		}
		s.Labels[i] = int(rec[0])
		for _, v := range rec[1:] {
			s.Images = append(s.Images, float32(v)/255)
		}
	}
	return s, nil
}

// Normalised returns a copy of s with every value of channel c (the first axis of
// Shape) mapped to (v - mean[c]) / std[c], as torchvision's Normalize does before a
// model trained on normalised images. mean and std hold one value per channel, or a
// single value for all channels. It returns an error for any other length or a
// standard deviation that is not positive.
func (s *Set) Normalised(mean, std []float32) (*Set, error) {
	if len(s.Shape) == 0 {
		return nil, fmt.Errorf("dataset: normalising a set without a shape")
	}
	channels := s.Shape[0]
	mean, err := perChannel("mean", mean, channels)
	if err != nil {
		return nil, err
	}
	if std, err = perChannel("std", std, channels); err != nil {
		return nil, err
	}
	for c, v := range std {
		if !(v > 0) {
			return nil, fmt.Errorf("dataset: channel %d: standard deviation %g must be positive", c, v)
		}
	}
	out := s.slice(0, s.Len())
	plane := s.Size() / channels
	for i := range out.Images {
		c := (i / plane) % channels
		out.Images[i] = (out.Images[i] - mean[c]) / std[c]
	}
	return out, nil
}

// ChannelsLast returns a copy of s with each example transposed from {C, H, W} to
// {H, W, C}, for models that take NHWC input (TensorFlow exports). It panics unless
// Shape has three axes.
func (s *Set) ChannelsLast() *Set {
	if len(s.Shape) != 3 {
		panic(fmt.Sprintf("dataset: ChannelsLast needs a {C, H, W} shape, have %v", s.Shape))
	}
	c, h, w := s.Shape[0], s.Shape[1], s.Shape[2]
	out := s.slice(0, s.Len())
	out.Shape = []int{h, w, c}
	n := s.Size()
	for i := range s.Len() {
		src, dst := s.Images[i*n:(i+1)*n], out.Images[i*n:(i+1)*n]
		for ch := range c {
			for y := range h {
				for x := range w {
					dst[(y*w+x)*c+ch] = src[(ch*h+y)*w+x]
				}
			}
		}
	}
	return out
}

// perChannel expands a one-value list to n channels and checks the length.
func perChannel(what string, v []float32, n int) ([]float32, error) {
	switch len(v) {
	case n:
		return v, nil
	case 1:
		out := make([]float32, n)
		for i := range out {
			out[i] = v[0]
		}
		return out, nil
	}
	return nil, fmt.Errorf("dataset: %d %s values for %d channels: give one per channel or one for all", len(v), what, n)
}
