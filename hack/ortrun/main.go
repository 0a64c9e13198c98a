//go:build ort

// Command ortrun runs an ONNX model with onnxruntime, the practical speed limit and
// an independent second runtime. It is its own process on purpose: loading
// onnxruntime into a process that also runs gorgonia crashed such processes with
// fatal faults on this project's machines, so the benchmark and the false-alarm
// checks call this program instead of linking onnxruntime.
//
// It reads N examples (raw little-endian float32, back to back) from -inputs, runs
// each one through a single reused session with -threads intra-op threads (default
// one), -rounds times,
// and prints one JSON object: the duration and CPU time of every round in seconds and the logits
// of the last round.
//
//	go run -tags ort ./hack/ortrun -lib libonnxruntime.so.1 -model m.onnx -inputs x.f32 -n 100
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"syscall"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

func main() {
	lib := flag.String("lib", "", "path of libonnxruntime.so (required)")
	model := flag.String("model", "", "ONNX model (required)")
	inputs := flag.String("inputs", "", "file of raw float32 examples (required)")
	n := flag.Int("n", 0, "number of examples in the file (required)")
	inName := flag.String("input-name", "", "model input name (required)")
	outName := flag.String("output-name", "", "model output name (required)")
	shapeFlag := flag.String("shape", "", "shape of one example, e.g. 1x28x28 (required)")
	classes := flag.Int("classes", 0, "number of output classes (required)")
	rounds := flag.Int("rounds", 5, "timed rounds over all examples")
	threads := flag.Int("threads", 1, "intra-op threads")
	flag.Parse()
	if err := run(*lib, *model, *inputs, *n, *inName, *outName, *shapeFlag, *classes, *rounds, *threads); err != nil {
		fmt.Fprintln(os.Stderr, "ortrun:", err)
		os.Exit(1)
	}
}

func run(lib, model, inputs string, n int, inName, outName, shapeText string, classes, rounds, threads int) error {
	var dims []int64
	size := 1
	for _, part := range splitX(shapeText) {
		var d int64
		if _, err := fmt.Sscan(part, &d); err != nil || d <= 0 {
			return fmt.Errorf("-shape %q", shapeText)
		}
		dims = append(dims, d)
		size *= int(d)
	}
	raw, err := os.ReadFile(inputs)
	if err != nil {
		return err
	}
	if len(raw) != 4*n*size {
		return fmt.Errorf("%s has %d bytes, %d examples of %d floats need %d", inputs, len(raw), n, size, 4*n*size)
	}
	data := make([]float32, n*size)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(); err != nil {
		return err
	}
	defer ort.DestroyEnvironment()
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(append([]int64{1}, dims...)...))
	if err != nil {
		return err
	}
	defer in.Destroy()
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(1, int64(classes)))
	if err != nil {
		return err
	}
	defer out.Destroy()
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return err
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(threads); err != nil {
		return err
	}
	session, err := ort.NewAdvancedSession(model, []string{inName}, []string{outName},
		[]ort.Value{in}, []ort.Value{out}, opts)
	if err != nil {
		return err
	}
	defer session.Destroy()
	result := struct {
		RoundSeconds    []float64   `json:"roundSeconds"`
		RoundCPUSeconds []float64   `json:"roundCPUSeconds"`
		Logits          [][]float32 `json:"logits"`
	}{Logits: make([][]float32, n)}
	for r := 0; r < rounds; r++ {
		start, startCPU := time.Now(), cpuSeconds()
		for i := 0; i < n; i++ {
			copy(in.GetData(), data[i*size:(i+1)*size])
			if err := session.Run(); err != nil {
				return err
			}
			if r == rounds-1 {
				result.Logits[i] = append([]float32(nil), out.GetData()...)
			}
		}
		result.RoundSeconds = append(result.RoundSeconds, time.Since(start).Seconds())
		result.RoundCPUSeconds = append(result.RoundCPUSeconds, cpuSeconds()-startCPU)
	}
	return json.NewEncoder(os.Stdout).Encode(result)
}

// cpuSeconds is the CPU time (user and system) the process has used: on a shared
// machine it measures the work done, whatever else ran meanwhile.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func splitX(s string) []string {
	var parts []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == 'x' {
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return parts
}
