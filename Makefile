# fragile-operator. The two commands a newcomer needs:
#   make demo   the operator's story on a local control plane: watermark mnist-7, verify, tamper, alarm
#   make test   everything CI runs (builds the test API server binaries on first use)

SHELL := /usr/bin/env bash
export GOTOOLCHAIN := local

CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN ?= go run sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
BIN ?= bin

.PHONY: all
all: build

.PHONY: demo
demo: ## Run the operator's story end to end on a local control plane (no cluster needed).
	hack/demo.sh

.PHONY: demo-cli
demo-cli: ## The same story with the fragile command alone, no Kubernetes.
	hack/demo-cli.sh

.PHONY: demo-endpoint
demo-endpoint: ## Verify a live endpoint: fragile serve on loopback, the model swapped while it runs.
	hack/demo-endpoint.sh

.PHONY: demo-s3
demo-s3: ## A real CIFAR-10 model whose bundle does not fit in a Secret, protected through S3 (versitygw on loopback).
	hack/demo-s3.sh

.PHONY: test
test: ## Run every check CI runs: format, vet, manifests, unit, envtest and fuzz smoke tests.
	hack/test.sh

.PHONY: manifests
manifests: ## Generate the CRD and RBAC manifests from the API types and markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: ## Generate the DeepCopy methods of the API types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

# The product binary computes with OpenBLAS (cgo), linked statically so the image needs
# no shared library; PURE_GO=1 builds the pure-Go variant (docs/inference.md). `make build`
# and `make image` use the same flags, so one compilation serves both.
ifeq ($(PURE_GO),1)
PRODUCT_GOENV ?= CGO_ENABLED=0 GOOS=linux
GO_BUILD_FLAGS ?= -trimpath -ldflags '-s -w'
else
PRODUCT_GOENV ?= CGO_ENABLED=1 GOOS=linux
GO_BUILD_FLAGS ?= -trimpath -tags openblas,osusergo,netgo -ldflags '-s -w -linkmode external -extldflags "-static"'
endif

.PHONY: build
build: ## Build the product binary bin/fragile (OpenBLAS linked statically; PURE_GO=1 for pure Go) and the research bench bin/fragile-lab.
	$(PRODUCT_GOENV) go build $(GO_BUILD_FLAGS) -o $(BIN)/fragile ./cmd/fragile
	go build -o $(BIN)/fragile-lab ./cmd/fragile-lab

# The image holds the binary `make build` makes (PRODUCT_GOENV, GO_BUILD_FLAGS above; the
# Dockerfile repeats them for people with Docker).
IMAGE_TAG ?= ghcr.io/fragile-operator/fragile:dev
IMAGE_TAR ?= $(BIN)/fragile-image.tar

.PHONY: image
image: ## Write the operator's OCI image to bin/fragile-image.tar (no Docker daemon needed).
	$(PRODUCT_GOENV) go build $(GO_BUILD_FLAGS) -o $(BIN)/image/fragile ./cmd/fragile
	go run ./hack/image --binary $(BIN)/image/fragile --out $(IMAGE_TAR) --tag $(IMAGE_TAG)

.PHONY: run
run: ## Run the manager against the cluster in $KUBECONFIG.
	go run ./cmd/fragile manager

.PHONY: bench
bench: ## Measure watermark and verify speed against onnx-go and onnxruntime (BENCHMARKS.md).
	hack/bench.sh

.PHONY: eval
eval: ## Reproduce BENCHMARKS.md's detection tables and plots from scratch (QUICK=1: the CI-sized run).
	hack/eval.sh

.PHONY: bench-controller
bench-controller: ## Measure the controller with 1,000 ModelWatermarks on envtest (BENCHMARKS.md, "Controller").
	hack/bench-controller.sh

.PHONY: bench-scale
bench-scale: ## Measure 1,000 ModelWatermarks verified by real Jobs on the local control plane (BENCHMARKS.md, "Scale"; ARGS="-period 120 -rounds 4" for a shorter period).
	hack/bench-scale.sh $(ARGS)

.PHONY: fmt vet
fmt:
	gofmt -w $$(git ls-files '*.go')
vet:
	go vet ./...
