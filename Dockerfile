# The operator's image: one static binary, `fragile`, which is the manager (`fragile manager`)
# and also what the training and verification Jobs run (`fragile watermark`, `fragile verify`),
# so model files are parsed only inside Jobs and the image has nothing else to patch.
#
#   docker build -t ghcr.io/fragile-operator/fragile:dev .
#
# Without Docker, `make image` builds the same image (hack/image) into bin/fragile-image.tar.
# The COPY lines below are exactly the packages cmd/fragile links (test/image keeps them so);
# the build flags are the Makefile's PRODUCT_GOENV and GO_BUILD_FLAGS: OpenBLAS, linked
# statically, so the final stage needs no shared library.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV GOTOOLCHAIN=local CGO_ENABLED=1 GOOS=linux
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopenblas-dev \
 && rm -rf /var/lib/apt/lists/*
# Modules first, so source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/fragile/ cmd/fragile/
COPY controllers/ controllers/
COPY internal/cli/ internal/cli/
COPY pkg/contract/ pkg/contract/
COPY pkg/fragile/*.go pkg/fragile/
COPY pkg/fragile/endpoint/ pkg/fragile/endpoint/
COPY pkg/fragile/infer/ pkg/fragile/infer/
COPY pkg/fragile/nn/ pkg/fragile/nn/
COPY pkg/fragile/oip/ pkg/fragile/oip/
COPY pkg/fragile/onnx/ pkg/fragile/onnx/
COPY pkg/fragile/prune/ pkg/fragile/prune/
COPY pkg/fragile/serve/ pkg/fragile/serve/
COPY pkg/metrics/ pkg/metrics/
COPY pkg/storage/ pkg/storage/
RUN go build -trimpath -tags openblas,osusergo,netgo \
      -ldflags='-s -w -linkmode external -extldflags "-static"' -o /out/fragile ./cmd/fragile

# distroless/static: no shell, no package manager, a non-root user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fragile /usr/local/bin/fragile
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/fragile"]
CMD ["manager"]
