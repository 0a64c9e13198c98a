// Command endpointbench measures verification of a live endpoint against verification of
// the same model as a file: mnist-7 watermarked with 100 triggers, served by `fragile
// serve`'s handler on loopback, verified with and without decoys and as a file, the three
// interleaved in every round so that load on a shared machine hits them alike. It prints
// each one's median and the requests an endpoint verification sends. hack/endpoint-bench.sh
// runs it.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/endpoint"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/serve"
)

func main() {
	rounds := flag.Int("rounds", 7, "measurements of each method")
	triggers := flag.Int("triggers", 100, "triggers in the bundle")
	flag.Parse()
	if err := run(*rounds, *triggers); err != nil {
		log.Fatal(err)
	}
}

func run(rounds, triggers int) error {
	ctx := context.Background()
	model, err := zoo.MNIST7()
	if err != nil {
		return err
	}
	key, err := fragile.NewKey(rand.Reader)
	if err != nil {
		return err
	}
	bundle, err := fragile.Watermark(ctx, model, key, fragile.WatermarkOptions{Triggers: triggers, InputMin: 0, InputMax: 255})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "endpointbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "mnist.onnx")
	if err := os.WriteFile(path, model, 0o644); err != nil {
		return err
	}
	s, err := serve.New(path, "")
	if err != nil {
		return err
	}
	defer s.Close()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	viaEndpoint := func(decoys int) func() (fragile.VerifyReport, error) {
		return func() (fragile.VerifyReport, error) {
			c, err := endpoint.New(endpoint.Config{URL: ts.URL, Model: "mnist"}, nil)
			if err != nil {
				return fragile.VerifyReport{}, err
			}
			return endpoint.Verify(ctx, c, bundle, endpoint.VerifyOptions{Decoys: decoys}), nil
		}
	}
	methods := []struct {
		name   string
		verify func() (fragile.VerifyReport, error)
	}{
		{fmt.Sprintf("endpoint, %d decoys", endpoint.DefaultDecoys), viaEndpoint(0)},
		{"endpoint, no decoys", viaEndpoint(-1)},
		{"file (fragile.Verify)", func() (fragile.VerifyReport, error) { return fragile.Verify(ctx, model, bundle), nil }},
	}
	times := make([][]time.Duration, len(methods))
	requests := make([]int, len(methods))
	// Round 0 warms the server's compiled graph and the connections; it is not counted.
	for round := 0; round <= rounds; round++ {
		for i, m := range methods {
			runtime.GC()
			start := time.Now()
			rep, err := m.verify()
			elapsed := time.Since(start)
			if err != nil {
				return err
			}
			if rep.Result != fragile.ResultIntact {
				return fmt.Errorf("%s: %s %s", m.name, rep.Result, rep.Message)
			}
			if round > 0 {
				times[i] = append(times[i], elapsed)
			}
			requests[i] = rep.Requests
		}
	}
	fmt.Printf("mnist-7, %d triggers, median of %d rounds (GOMAXPROCS %d):\n", triggers, rounds, runtime.GOMAXPROCS(0))
	for i, m := range methods {
		slices.Sort(times[i])
		median := times[i][len(times[i])/2]
		if len(times[i])%2 == 0 {
			median = (times[i][len(times[i])/2-1] + median) / 2
		}
		fmt.Printf("  %-24s %7.0f ms  (min %4.0f, max %4.0f)", m.name, ms(median), ms(times[i][0]), ms(times[i][len(times[i])-1]))
		if requests[i] > 0 {
			fmt.Printf("  %d HTTP requests", requests[i])
		}
		fmt.Println()
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
