//go:build !openblas

package infer

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLAS names the GEMM this binary runs.
const BLAS = "gonum (pure Go)"

var (
	blas32 blas.Float32 = gonum.Implementation{}
	blas64 blas.Float64 = gonum.Implementation{}
)
