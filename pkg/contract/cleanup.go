package contract

// CleanupResult is the outcome of deleting a bundle that lives on a PVC or in S3 when its
// ModelWatermark goes (spec.bundle.reclaimPolicy Delete).
type CleanupResult string

const (
	// CleanupDeleted means the bytes at the bundle's place had the recorded digest and were
	// deleted.
	CleanupDeleted CleanupResult = "deleted"
	// CleanupAbsent means nothing was at the bundle's place (or its bucket is gone).
	CleanupAbsent CleanupResult = "absent"
	// CleanupKept means the bytes there have another digest (another writer's, or a bundle of
	// another resource sharing the place) and were left alone on purpose.
	CleanupKept CleanupResult = "kept"
	// CleanupError means the cleanup could not complete; Message and Cause say why.
	CleanupError CleanupResult = "error"
)

// ExitCode maps a cleanup result to the `fragile cleanup` exit status: 0 when the outcome is
// final (deleted, absent, kept), 2 when it could not complete and a retry may help.
func (r CleanupResult) ExitCode() int {
	switch r {
	case CleanupDeleted, CleanupAbsent, CleanupKept:
		return 0
	default:
		return 2
	}
}

// CleanupReport is what `fragile cleanup --report` writes: a cleanup Job's termination
// message. It holds no secret (the bundle is sealed, and is never read into the report).
type CleanupReport struct {
	Result CleanupResult `json:"result"`
	// Digest is "sha256:<hex>" of the bytes found at the bundle's place, when they were read.
	Digest          string  `json:"digest,omitempty"`
	Bytes           int64   `json:"bytes,omitempty"`
	DurationSeconds float64 `json:"durationSeconds"`
	Message         string  `json:"message,omitempty"`
	// Cause classifies an error a person can act on: CauseStorageUnreachable or
	// CauseStorageAccessDenied; empty otherwise.
	Cause string `json:"cause,omitempty"`
}
