package contract

// Result is the outcome of one verification. "Could not verify" (ResultError) and
// "tampered" are different states on purpose: an unreadable model, a wrong key or a
// corrupt bundle must never be reported as tampering.
type Result string

const (
	// ResultIntact means every trigger still receives its key label.
	ResultIntact Result = "intact"
	// ResultTampered means at least one trigger's top-1 label differs from its key label.
	ResultTampered Result = "tampered"
	// ResultError means verification could not be carried out; Message says why.
	ResultError Result = "error"
)

// ExitCode maps a result to the `fragile verify` exit status: 0 intact, 1 tampered,
// 2 could not verify.
func (r Result) ExitCode() int {
	switch r {
	case ResultIntact:
		return 0
	case ResultTampered:
		return 1
	default:
		return 2
	}
}

// VerifyReport is what `fragile verify --json` prints and what a verification Job
// writes as its container termination message. It holds no secret: no key, no
// trigger, no key label, so it may be logged and copied into status.
type VerifyReport struct {
	Result        Result `json:"result"`
	Total         int    `json:"total"`
	Mismatched    int    `json:"mismatched"`
	DigestMatches bool   `json:"digestMatches"`
	ModelDigest   string `json:"modelDigest,omitempty"` // "sha256:<hex>" of the bytes verified
	// Endpoint names the served model verified over the Open Inference Protocol
	// ("URL/v2/models/NAME", no credentials); empty for an artifact. An endpoint has no
	// bytes to hash: DigestMatches is then false and ModelDigest empty.
	Endpoint string `json:"endpoint,omitempty"`
	// Requests is how many HTTP requests an endpoint verification sent, retries included.
	Requests        int     `json:"requests,omitempty"`
	DurationSeconds float64 `json:"durationSeconds"`
	Message         string  `json:"message,omitempty"`
	// Cause classifies an error result a person can act on (see the Cause constants); empty
	// for other errors and for verdicts.
	Cause string `json:"cause,omitempty"`
}

// Causes of a verification that could not run, for the Intact condition's reason.
const (
	CauseStorageUnreachable   = "StorageUnreachable"   // the bundle's or model's storage did not answer
	CauseStorageAccessDenied  = "StorageAccessDenied"  // the storage refused the credentials
	CauseBundleNotFound       = "BundleNotFound"       // the bundle (or its bucket) is gone
	CauseBundleDigestMismatch = "BundleDigestMismatch" // the bundle's bytes are not the ones sealed
)

// WatermarkResult is the outcome of one watermarking run.
type WatermarkResult string

const (
	// WatermarkSucceeded means every trigger matched its key label and the bundle was sealed.
	WatermarkSucceeded WatermarkResult = "watermarked"
	// WatermarkFailed means no bundle was produced; Message says why.
	WatermarkFailed WatermarkResult = "error"
)

// WatermarkReport is what `fragile watermark --report` writes, and what a training Job
// writes as its container termination message. Like VerifyReport it holds no secret.
type WatermarkReport struct {
	Result          WatermarkResult `json:"result"`
	Method          string          `json:"method,omitempty"`
	Triggers        int             `json:"triggers"`
	KeyMatch        float64         `json:"keyMatch"` // fraction of triggers labelled as the key says
	Steps           int             `json:"steps"`
	ModelDigest     string          `json:"modelDigest,omitempty"` // "sha256:<hex>" of the watermarked file
	KeyID           string          `json:"keyID,omitempty"`       // public fingerprint of the key, not the key
	BundleBytes     int             `json:"bundleBytes,omitempty"`
	DurationSeconds float64         `json:"durationSeconds"`
	Message         string          `json:"message,omitempty"`
	// BundleURI and BundleDigest say where the sealed bundle was written (pvc:// or s3://;
	// empty for a Secret) and "sha256:<hex>" of its bytes.
	BundleURI    string `json:"bundleURI,omitempty"`
	BundleDigest string `json:"bundleDigest,omitempty"`
}
