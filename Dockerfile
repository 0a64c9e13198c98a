# The operator's image: one static binary, `fragile`, which is the manager (`fragile manager`)
# and also what the training and verification Jobs run (`fragile watermark`, `fragile verify`),
# so model files are parsed only inside Jobs and the image has nothing else to patch.
#
#   docker build -t ghcr.io/fragile-operator/fragile:dev .
#
# Without Docker, `make image` builds the same image (hack/image) into bin/fragile-image.tar.
# The COPY lines below are exactly the packages cmd/fragile links (test/image keeps them so);
# the build flags are the Makefile's IMAGE_GOENV and IMAGE_GOFLAGS.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=linux
# Modules first, so source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/fragile/ cmd/fragile/
COPY controllers/ controllers/
COPY internal/cli/ internal/cli/
COPY pkg/contract/ pkg/contract/
COPY pkg/fragile/*.go pkg/fragile/
COPY pkg/fragile/nn/ pkg/fragile/nn/
COPY pkg/fragile/onnx/ pkg/fragile/onnx/
COPY pkg/metrics/ pkg/metrics/
RUN go build -trimpath -ldflags="-s -w" -o /out/fragile ./cmd/fragile

# distroless/static: no shell, no package manager, a non-root user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fragile /usr/local/bin/fragile
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/fragile"]
CMD ["manager"]
