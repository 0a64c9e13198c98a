// Package storage is the Jobs' side of where models and sealed bundles live besides local
// files: S3-compatible object storage (s3://BUCKET/KEY), with the endpoint, credentials and an
// optional custom CA read from a directory (a mounted Secret) or the environment.
//
// It imports no Kubernetes package: the operator only tells a Job where to look (flags and a
// mounted Secret), and the Job does the reading and writing. Errors say which of the causes a
// person can act on it was (endpoint unreachable, credentials refused, object missing), as
// Cause values, so that "could not verify" is never confused with "tampered".
package storage
