package cli

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAbandonGivesUpOnWorkThatIgnoresItsContext: work that never looks at its context
// (a gorgonia step) no longer holds the command once the grace has passed.
func TestAbandonGivesUpOnWorkThatIgnoresItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	defer close(release)
	time.AfterFunc(10*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		_, err := Abandon(ctx, 50*time.Millisecond, func() (int, error) {
			<-release // ignores ctx, as one uninterruptible step does
			return 1, nil
		})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Abandon waited for work that ignores its context")
	}
}

// TestAbandonKeepsWorkThatStopsInTime: work that returns within the grace keeps its
// own result (its "stopped" error, or a result it finished just then).
func TestAbandonKeepsWorkThatStopsInTime(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	own := errors.New("stopped between steps")
	v, err := Abandon(ctx, time.Minute, func() (int, error) {
		<-ctx.Done()
		return 7, own
	})
	if v != 7 || err != own {
		t.Fatalf("got %d, %v; want the work's own 7, %v", v, err, own)
	}
	v, err = Abandon(context.Background(), 0, func() (int, error) { return 3, nil })
	if v != 3 || err != nil {
		t.Fatalf("uncancelled: got %d, %v", v, err)
	}
}
