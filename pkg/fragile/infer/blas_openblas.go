//go:build openblas

package infer

/*
#cgo LDFLAGS: -lopenblas -lm -lpthread
void openblas_set_num_threads(int num_threads);
*/
import "C"

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/netlib/blas/netlib"
)

// BLAS names the GEMM this binary runs.
const BLAS = "OpenBLAS (cgo, one thread)"

var (
	blas32 blas.Float32 = netlib.Implementation{}
	blas64 blas.Float64 = netlib.Implementation{}
)

// OpenBLAS runs single-threaded: runners parallelise over examples instead, which
// measured faster here, and keeps every result independent of the thread count
// (OpenBLAS's results vary slightly with its own).
func init() { C.openblas_set_num_threads(1) }
