package dataset_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/dataset"
)

// cifarRecord returns one record: label, then pixel (c, y, x) = c*100 + y + x mod 256.
func cifarRecord(label byte) []byte {
	rec := []byte{label}
	for c := range 3 {
		for y := range 32 {
			for x := range 32 {
				rec = append(rec, byte((c*100+y+x)%256))
			}
		}
	}
	return rec
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "batch.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCIFAR10Binary(t *testing.T) {
	path := writeFile(t, append(cifarRecord(3), cifarRecord(9)...))
	s, err := dataset.CIFAR10Binary(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || s.Labels[0] != 3 || s.Labels[1] != 9 || s.Classes != 10 || s.Size() != 3072 {
		t.Fatalf("labels %v, classes %d, size %d: want [3 9], 10, 3072", s.Labels, s.Classes, s.Size())
	}
	img := s.Image(1)
	for _, p := range []struct{ c, y, x int }{{0, 0, 0}, {1, 5, 7}, {2, 31, 31}} {
		want := float32((p.c*100+p.y+p.x)%256) / 255
		if got := img[(p.c*32+p.y)*32+p.x]; got != want {
			t.Errorf("pixel %+v = %g, want %g", p, got, want)
		}
	}
}

func TestCIFAR10BinaryRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"short":     {cifarRecord(1)[:3000], "whole number"},
		"empty":     {nil, "whole number"},
		"bad label": {append(cifarRecord(1), cifarRecord(10)...), "record 1 has label 10"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := dataset.CIFAR10Binary(writeFile(t, tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := dataset.CIFAR10Binary(filepath.Join(t.TempDir(), "absent.bin")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestNormalisedAndChannelsLast(t *testing.T) {
	s, err := dataset.CIFAR10Binary(writeFile(t, cifarRecord(0)))
	if err != nil {
		t.Fatal(err)
	}
	mean, std := []float32{0.5, 0.4, 0.3}, []float32{0.2, 0.25, 0.5}
	n, err := s.Normalised(mean, std)
	if err != nil {
		t.Fatal(err)
	}
	for c := range 3 {
		i := (c*32+4)*32 + 6
		want := (s.Images[i] - mean[c]) / std[c]
		if math.Abs(float64(n.Images[i]-want)) > 1e-6 {
			t.Errorf("channel %d: %g normalised to %g, want %g", c, s.Images[i], n.Images[i], want)
		}
	}
	if s.Images[0] != 0 {
		t.Error("Normalised changed its source")
	}
	one, err := s.Normalised([]float32{0.5}, []float32{0.25})
	if err != nil || one.Images[3071] != (s.Images[3071]-0.5)/0.25 {
		t.Errorf("one mean and std for all channels: %v", err)
	}
	for _, bad := range [][2][]float32{{{0, 0}, {1, 1}}, {{0}, {0}}, {{0}, {-1, 1, 1}}} {
		if _, err := s.Normalised(bad[0], bad[1]); err == nil {
			t.Errorf("mean %v std %v: no error", bad[0], bad[1])
		}
	}
	hwc := s.ChannelsLast()
	if want := []int{32, 32, 3}; hwc.Shape[0] != want[0] || hwc.Shape[2] != want[2] {
		t.Fatalf("shape %v, want %v", hwc.Shape, want)
	}
	for _, p := range []struct{ c, y, x int }{{0, 0, 1}, {1, 5, 7}, {2, 31, 30}} {
		if got, want := hwc.Images[(p.y*32+p.x)*3+p.c], s.Images[(p.c*32+p.y)*32+p.x]; got != want {
			t.Errorf("pixel %+v: %g in HWC, %g in CHW", p, got, want)
		}
	}
}

// TestRealCIFARImages reads the 185 real CIFAR-10 test images of ../shared.
func TestRealCIFARImages(t *testing.T) {
	path := "../../../../shared/realmodels/cifar10/cifar10_from_vnncomp.bin"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("real CIFAR-10 images absent (%v): they live outside the repository", err)
	}
	s, err := dataset.CIFAR10Binary(path)
	if err != nil {
		t.Fatal(err)
	}
	perClass := make([]int, 10)
	for _, l := range s.Labels {
		perClass[l]++
	}
	t.Logf("%d images, per class %v", s.Len(), perClass)
	if s.Len() != 185 {
		t.Errorf("%d images, the README says 185", s.Len())
	}
	for c, n := range perClass {
		if n < 7 {
			t.Errorf("class %d has %d images, the README says 7-32", c, n)
		}
	}
}
