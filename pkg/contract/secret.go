package contract

// Data keys of the Secrets the operator and its Jobs share.
const (
	// KeyDataKey is the data key of the key Secret the operator generates (a user's own
	// key Secret may name another through spec.keySecretRef.key). Its value is FormatKey's
	// text.
	KeyDataKey = "key"
	// BundleDataKey is the data key of the bundle Secret: the sealed bundle the training Job
	// writes and the verification Jobs mount.
	BundleDataKey = "bundle"
)

// Annotations on the bundle Secret, written by one side and read by the other.
const (
	// AnnotationTrainingProgress is set by the training Job on the bundle Secret while it runs,
	// throttled, e.g. "step 40/300, key match 87%".
	AnnotationTrainingProgress = "fragile.dev/training-progress"
	// AnnotationWatermarkHash on the bundle Secret names the watermark (a hash of the spec
	// fields that define it) the Secret is reserved for. The controller sets it before starting a
	// training Job; the Job refuses to write a bundle into a Secret reserved for another hash, so
	// a superseded Job still shutting down cannot overwrite a newer bundle.
	AnnotationWatermarkHash = "fragile.dev/watermark-hash"
	// AnnotationBundleDigest is set by the training Job with the bundle bytes: "sha256:<hex>" of
	// the sealed bundle. Its presence marks the bundle as written.
	AnnotationBundleDigest = "fragile.dev/bundle-digest"
)

// EnvWatermarkHash is how the training Job learns its watermark hash, to compare with the
// bundle Secret's AnnotationWatermarkHash.
const EnvWatermarkHash = "FRAGILE_WATERMARK_HASH"
