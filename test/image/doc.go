// Package image tests the operator's container image as a user receives it: it unpacks the
// OCI tar that `make image` writes and runs the entrypoint from the unpacked root
// filesystem, and it keeps the Dockerfile's copied folders equal to what the product binary
// needs.
package image
