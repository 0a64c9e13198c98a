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
