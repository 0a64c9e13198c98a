package nn

import "testing"

// The selection's description is also its op's hash: two different selections
// must never render alike.
func TestDescribeIndex(t *testing.T) {
	for _, c := range []struct {
		idx  []int
		want string
	}{
		{[]int{0, 1, 2, 3}, "0:4:1"},
		{[]int{5, 3, 1}, "5:-1:-2"},
		{[]int{-1, 0, 1, 2, -1, -1}, "pad 1 0:3:1 pad 2"},
		{[]int{3, 0, 3}, "[3 0 3]"},
		{[]int{2}, "[2]"},
		{[]int{-1, -1}, "pad 2"},
		{[]int{1, -1, 2}, "[1 -1 2]"},
	} {
		if got := describeIndex(c.idx); got != c.want {
			t.Errorf("describeIndex(%v) = %q, want %q", c.idx, got, c.want)
		}
	}
}

// Pad's modes on numpy's documented example: np.pad([1, 2, 3, 4, 5], (2, 3), mode).
func TestPadModes(t *testing.T) {
	for mode, want := range map[string][]int{
		"constant": {0, 0, 1, 2, 3, 4, 5, 0, 0, 0},
		"edge":     {1, 1, 1, 2, 3, 4, 5, 5, 5, 5},
		"reflect":  {3, 2, 1, 2, 3, 4, 5, 4, 3, 2},
		"wrap":     {4, 5, 1, 2, 3, 4, 5, 1, 2, 3},
	} {
		outside := padModes[mode]
		for i, w := range want {
			j := i - 2
			got := j + 1
			if j < 0 || j >= 5 {
				got = outside(j, 5) + 1 // -1, the fill, becomes 0
			}
			if got != w {
				t.Errorf("%s: position %d holds %d, want %d", mode, j, got, w)
			}
		}
	}
	// Past one reflection, and an axis of one element.
	if got := padModes["reflect"](-9, 3); got != 1 {
		t.Errorf("reflect(-9, 3) = %d, want 1", got)
	}
	if got := padModes["reflect"](4, 1); got != 0 {
		t.Errorf("reflect(4, 1) = %d, want 0", got)
	}
}
