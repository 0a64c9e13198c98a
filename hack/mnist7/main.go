// Command mnist7 writes the ONNX model zoo's MNIST model (mnist-7), extracted from
// the onnx-go module in the Go module cache, to the given file. The model is never
// committed to this repository; scripts and the demo call this instead.
//
//	go run ./hack/mnist7 -out /tmp/mnist-7.onnx
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/fragile-operator/fragile-operator/internal/zoo"
)

func main() {
	out := flag.String("out", "mnist-7.onnx", "file to write")
	flag.Parse()
	model, err := zoo.MNIST7()
	if err == nil {
		err = os.WriteFile(*out, model, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mnist7:", err)
		os.Exit(1)
	}
}
