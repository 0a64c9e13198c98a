package cli

import (
	"context"
	"testing"
)

func TestDispatch(t *testing.T) {
	var got []string
	commands := Commands{"echo": func(_ context.Context, args []string) int { got = args; return 1 }}
	if code := Dispatch("x", commands, []string{"echo", "a", "b"}); code != 1 || len(got) != 2 || got[1] != "b" {
		t.Errorf("echo: exit %d, args %q", code, got)
	}
	for _, c := range []struct {
		args []string
		want int
	}{{nil, ExitUsage}, {[]string{"--help"}, ExitOK}, {[]string{"help"}, ExitOK}, {[]string{"nope"}, ExitUsage}} {
		if code := Dispatch("x", commands, c.args); code != c.want {
			t.Errorf("%q: exit %d, want %d", c.args, code, c.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	if lo, hi, err := ParseRange("0,255"); err != nil || lo != 0 || hi != 255 {
		t.Errorf("0,255: %g %g %v", lo, hi, err)
	}
	for _, bad := range []string{"", "1", "1,1", "2,1", "a,b", "0,1,2"} {
		if _, _, err := ParseRange(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
