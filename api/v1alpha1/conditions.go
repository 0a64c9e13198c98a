package v1alpha1

// Condition types of a ModelWatermark. Each is set on every reconcile with the resource's
// generation; Unknown means "not established yet or could not be established", never "bad".
const (
	// ConditionWatermarked is True when a training Job for the current spec finished, its
	// report says every trigger matched its key label, and the sealed bundle is in place.
	// False means training failed or its result cannot be used; Unknown means it is running,
	// not started, or suspended.
	ConditionWatermarked = "Watermarked"

	// ConditionIntact is True when the newest verification Job found every trigger still
	// labelled as the key says. It is False only with reason TamperDetected, i.e. when at
	// least one label changed: a model that could not be read, a crashed Job or a garbled
	// report gives Unknown (reason VerificationFailed), never False. A TamperDetected verdict
	// stays until a later verification finds the model intact, so that breaking verification
	// after tampering cannot clear the alarm.
	ConditionIntact = "Intact"

	// ConditionReady summarises the other two: True when the model is watermarked, its latest
	// verdict is intact, the pinned digest (if any) matches and the resource is not suspended.
	// Otherwise it takes the status, reason and message of the first condition that is not True,
	// or False with reason DigestMismatch or Suspended.
	ConditionReady = "Ready"
)

// Reasons used by the Watermarked condition.
const (
	// ReasonTrainingPending: no training Job exists yet for the current spec.
	ReasonTrainingPending = "TrainingPending"
	// ReasonTrainingInProgress: the training Job for the current spec is running.
	ReasonTrainingInProgress = "TrainingInProgress"
	// ReasonTrainingFailed: the last allowed training attempt (spec.training.maxAttempts) failed,
	// timed out, or ended without a usable report.
	ReasonTrainingFailed = "TrainingFailed"
	// ReasonTrainingBackoff: a training attempt failed and the next one waits for its backoff
	// (Watermarked=Unknown); the message names the failed attempt and when the next starts.
	ReasonTrainingBackoff = "TrainingBackoff"
	// ReasonWatermarked: training succeeded and the bundle is sealed (Watermarked=True).
	ReasonWatermarked = "Watermarked"
	// ReasonBundleMissing: training succeeded but the bundle Secret is gone or holds a bundle of
	// another spec; delete the training Job named in the message to retrain.
	ReasonBundleMissing = "BundleMissing"
	// ReasonKeySecretNotFound: spec.keySecretRef names a Secret that does not exist. Used by
	// Watermarked before training, and by Intact afterwards (verification cannot run either).
	ReasonKeySecretNotFound = "KeySecretNotFound"
	// ReasonJobRejected: the API server refused a Job built from this spec (for example an
	// invalid spec.model.volume); the message carries the API server's words.
	ReasonJobRejected = "JobRejected"
)

// Reasons used by the Intact condition.
const (
	// ReasonAwaitingWatermark: nothing to verify until Watermarked is True.
	ReasonAwaitingWatermark = "AwaitingWatermark"
	// ReasonVerificationPending: watermarked, but no verification Job has finished yet.
	ReasonVerificationPending = "VerificationPending"
	// ReasonIntact: every trigger kept its key label in the newest verification (Intact=True).
	ReasonIntact = "Intact"
	// ReasonTamperDetected: at least one trigger changed its label: the model's weights are not
	// the ones that were watermarked (Intact=False; the only reason Intact is ever False with).
	ReasonTamperDetected = "TamperDetected"
	// ReasonEndpointUnresolved: spec.endpoint.inferenceServiceRef names an InferenceService that
	// does not exist, has no URL in its status yet, or cannot be read (KServe not installed);
	// no verification Job starts until it resolves. Intact=Unknown.
	ReasonEndpointUnresolved = "EndpointUnresolved"
	// ReasonStorageUnreachable: the newest verification could not reach the bundle's or the
	// model's storage (S3 endpoint down, DNS, TLS: a private CA belongs in the S3 Secret's ca.crt).
	// Intact=Unknown.
	ReasonStorageUnreachable = "StorageUnreachable"
	// ReasonStorageAccessDenied: the storage refused the credentials in the S3 Secret. Intact=Unknown.
	ReasonStorageAccessDenied = "StorageAccessDenied"
	// ReasonBundleNotFound: the sealed bundle (or its bucket or file) is gone; delete the training
	// Jobs to watermark afresh. Intact=Unknown.
	ReasonBundleNotFound = "BundleNotFound"
	// ReasonBundleDigestMismatch: the bundle's bytes differ from the digest recorded when it was
	// sealed (replaced or damaged). Could not verify, not tampering: Intact=Unknown.
	ReasonBundleDigestMismatch = "BundleDigestMismatch"
	// ReasonVerificationFailed: the newest verification reached no verdict (unreadable model,
	// wrong key, corrupt bundle, timeout, crash, missing or garbled report). Intact=Unknown.
	ReasonVerificationFailed = "VerificationFailed"
)

// Reasons used only by the Ready condition; otherwise Ready borrows the reason of the
// condition that keeps it from being True.
const (
	// ReasonReady: watermarked and verified intact (Ready=True).
	ReasonReady = "Ready"
	// ReasonDigestMismatch: the model bytes differ from spec.model.sha256. Also used by
	// Watermarked=False when the bytes presented for training were not the pinned ones.
	ReasonDigestMismatch = "DigestMismatch"
	// ReasonSuspended: spec.suspend is true; no new Jobs start. Also used by Watermarked=Unknown
	// when suspension prevents the first training run.
	ReasonSuspended = "Suspended"
)

// Reasons of the events a deletion emits when spec.bundle.reclaimPolicy is Delete. The
// resource is gone soon after, so these events are the lasting record of what became of its
// bundle.
const (
	// ReasonBundleCleanupStarted (Normal): the cleanup Job that deletes the recorded bundle started.
	ReasonBundleCleanupStarted = "BundleCleanupStarted"
	// ReasonBundleDeleted (Normal): the bundle with the recorded digest was deleted.
	ReasonBundleDeleted = "BundleDeleted"
	// ReasonBundleAlreadyGone (Normal): nothing was at the bundle's place any more.
	ReasonBundleAlreadyGone = "BundleAlreadyGone"
	// ReasonBundleKept: the bundle was left where it is on purpose: its bytes no longer have the
	// recorded digest (another writer's, Warning), no sealed bundle was ever recorded, or
	// reclaimPolicy turned Retain (Normal). The message names the place.
	ReasonBundleKept = "BundleKept"
	// ReasonBundleCleanupFailed (Warning): the cleanup could not delete the bundle (storage
	// unreachable, credentials refused, the Job failed or did not finish in time); the resource
	// was deleted anyway and the message names what was left behind.
	ReasonBundleCleanupFailed = "BundleCleanupFailed"
)

// Labels on the objects the operator owns, for people and tools selecting them. What the
// operator and its Jobs exchange (Secret data keys, annotations, reports) is in pkg/contract.
const (
	// LabelModelWatermark on every owned object names the ModelWatermark it belongs to.
	LabelModelWatermark = "fragile.dev/modelwatermark"
	// LabelWatermarkHash on Jobs names the watermark they train or verify.
	LabelWatermarkHash = "fragile.dev/watermark-hash"
)
