package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ModelWatermarkSpec is the desired state: which deployed model to protect, with which key,
// and how often to check it.
//
// Changing model.uri, model.sha256, model.volume, model.inputRange, model.input, triggers or keySecretRef
// invalidates the watermark and starts a new training run; every other field (training knobs,
// verification period, suspend) applies to the next Job without retraining.
type ModelWatermarkSpec struct {
	// model says where the deployed model artifact is and what inputs it accepts.
	// +required
	Model ModelSource `json:"model"`

	// endpoint, when set, is the live model the verification Jobs check over the Open Inference
	// Protocol (KServe V2) instead of reading model.uri; training still reads model. Changing it
	// does not retrain: the triggers belong to the weights, not to where they are served.
	// +optional
	Endpoint *EndpointSource `json:"endpoint,omitempty"`

	// keySecretRef names a Secret in this namespace holding the watermark key, one line
	// "fragile-key-v1:<64 hex digits>" as written by `fragile keygen`. When absent the operator
	// generates a key with crypto/rand into a Secret named <name>-key that this resource owns.
	// The watermark is bound to the Secret object: pointing at another Secret, or deleting and
	// recreating it, retrains. Editing the key bytes in place is not detected; use a new Secret.
	// +optional
	KeySecretRef *SecretKeyReference `json:"keySecretRef,omitempty"`

	// triggers is the number of trigger inputs generated and checked. More triggers make small
	// weight changes likelier to flip at least one label, at a linear cost in training and
	// verification time.
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Triggers int32 `json:"triggers,omitempty"`

	// training tunes the watermarking Job. Changing it does not retrain an existing watermark.
	// +kubebuilder:default={}
	// +optional
	Training TrainingSpec `json:"training,omitempty"`

	// verification says how often and within which limits the model is re-checked.
	// +kubebuilder:default={}
	// +optional
	Verification VerificationSpec `json:"verification,omitempty"`

	// bundle says where the sealed trigger bundle is kept. Unset: data key "bundle" of the
	// Secret <name>-bundle, which holds bundles up to about 1 MiB (100 triggers of a 3x32x32
	// model take 1.2 MB, so larger models need a PVC or S3). Changing it retrains.
	// +optional
	Bundle *BundleStorage `json:"bundle,omitempty"`

	// suspend stops the operator from starting new training and verification Jobs. Jobs
	// already running finish; conditions keep the last result and Ready turns False.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// ModelSource locates the deployed model in the KServe storage-URI style.
//
// +kubebuilder:validation:XValidation:rule="self.uri.startsWith('pvc://') || self.uri.startsWith('s3://') || self.uri.startsWith('http://') || self.uri.startsWith('https://') || self.uri.startsWith('/')",message="uri must be pvc://CLAIM/PATH, s3://BUCKET/KEY, http(s)://HOST/PATH, or an absolute path inside spec.model.volume",fieldPath=".uri"
// +kubebuilder:validation:XValidation:rule="!self.uri.startsWith('s3://') || self.uri.matches('^s3://[a-z0-9][-a-z0-9.]*[a-z0-9]/[^/].*$')",message="an s3:// uri must name a bucket and a key: s3://BUCKET/KEY",fieldPath=".uri"
// +kubebuilder:validation:XValidation:rule="self.uri.startsWith('s3://') == has(self.s3)",message="spec.model.s3 (the Secret with the endpoint and credentials) is required for an s3:// uri and only allowed with one",fieldPath=".uri"
// +kubebuilder:validation:XValidation:rule="!self.uri.startsWith('pvc://') || self.uri.matches('^pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[^/].*$')",message="a pvc:// uri must name a claim and a file inside it: pvc://CLAIM/PATH",fieldPath=".uri"
// +kubebuilder:validation:XValidation:rule="self.uri.startsWith('http://') || self.uri.startsWith('https://') || !self.uri.matches('(^|/)[.][.](/|$)')",message="uri must not contain '..' path segments",fieldPath=".uri"
// +kubebuilder:validation:XValidation:rule="!self.uri.startsWith('/') || has(self.volume)",message="uri is an absolute path, so spec.model.volume must say which volume holds it",fieldPath=".uri"
// +kubebuilder:validation:XValidation:rule="!has(self.volume) || self.uri.startsWith(self.volume.mountPath + '/')",message="spec.model.volume is only for an absolute-path uri, which must lie under spec.model.volume.mountPath",fieldPath=".uri"
type ModelSource struct {
	// uri is where the Jobs read the model (an ONNX file):
	// "pvc://CLAIM/PATH" mounts PersistentVolumeClaim CLAIM read-only and reads PATH inside it;
	// "s3://BUCKET/KEY" is read through the S3 API with the credentials in spec.model.s3;
	// "http://..." or "https://..." is downloaded by the Job;
	// "/ABSOLUTE/PATH" is a file inside spec.model.volume, mounted at its mountPath.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=2048
	// +required
	URI string `json:"uri"`

	// sha256 pins the model bytes: 64 lowercase hex digits. When set, a model whose digest
	// differs is never watermarked, and a verification that reads different bytes makes the
	// resource not Ready even if every trigger still matches.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-f0-9]{64}$')",message="sha256 must be 64 lowercase hex digits, as sha256sum prints them"
	// +optional
	SHA256 string `json:"sha256,omitempty"`

	// volume holds the model when uri is an absolute path (the local demo uses a hostPath).
	// +optional
	Volume *ModelVolume `json:"volume,omitempty"`

	// s3 says how the Jobs reach an s3:// uri.
	// +optional
	S3 *S3Access `json:"s3,omitempty"`

	// inputRange is the range of input values the model expects (mnist-7: 0 to 255). Triggers
	// are generated inside it so that a serving stack's input validation cannot tell them apart.
	// +kubebuilder:default={min:"0",max:"1"}
	// +optional
	InputRange InputRange `json:"inputRange,omitempty"`

	// input says what the serving pipeline does to an image before the model, as
	// torchvision's Normalize states it: (pixel - mean[c]) / std[c]. inputRange is then the
	// pixel range before normalisation (0 to 1 for torchvision models), triggers are made in
	// pixel space and normalised the same way, so each is a valid image of that range.
	// +optional
	Input *ModelInput `json:"input,omitempty"`
}

// ModelInput is the per-channel normalisation the serving pipeline applies. Values are
// decimal strings, one per channel (or one for every channel), as inputRange's bounds are.
//
// +kubebuilder:validation:XValidation:rule="size(self.mean) == size(self.std)",message="input.mean and input.std need one value each per channel"
type ModelInput struct {
	// mean is subtracted from each channel, e.g. ["0.4914", "0.4822", "0.4465"].
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=32
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^-?(0|[1-9][0-9]{0,14})([.][0-9]{1,15})?$')",message="must be a decimal number such as 0.485 (no exponent)"
	// +required
	Mean []string `json:"mean"`

	// std divides each channel after the mean is subtracted, e.g. ["0.2471", "0.2435", "0.2616"].
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=32
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^(0|[1-9][0-9]{0,14})([.][0-9]{1,15})?$') && double(self) > 0.0",message="must be a positive decimal number such as 0.225 (no exponent)"
	// +required
	Std []string `json:"std"`
}

// BundleStorage is where the sealed bundle lives besides the default Secret. The bundle is
// encrypted and authenticated under the key wherever it is, and the operator records its
// digest (status.bundle.digest): a verification that finds other bytes there reports
// "could not verify" (Intact=Unknown, reason BundleDigestMismatch), never tampering.
//
// +kubebuilder:validation:XValidation:rule="self.uri.startsWith('pvc://') || self.uri.startsWith('s3://')",message="spec.bundle.uri must be pvc://CLAIM/PATH or s3://BUCKET/KEY (omit spec.bundle to keep the bundle in a Secret)",fieldPath=".uri"
// +kubebuilder:validation:XValidation:rule="!self.uri.startsWith('pvc://') || self.uri.matches('^pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[^/].*[^/]$')",message="a pvc:// bundle uri must name a claim and a file inside it: pvc://CLAIM/PATH",fieldPath=".uri"
// +kubebuilder:validation:XValidation:rule="!self.uri.startsWith('s3://') || self.uri.matches('^s3://[a-z0-9][-a-z0-9.]*[a-z0-9]/[^/].*[^/]$')",message="an s3:// bundle uri must name a bucket and a key: s3://BUCKET/KEY",fieldPath=".uri"
// +kubebuilder:validation:XValidation:rule="!self.uri.matches('(^|/)[.][.](/|$)')",message="spec.bundle.uri must not contain '..' path segments",fieldPath=".uri"
// +kubebuilder:validation:XValidation:rule="self.uri.startsWith('s3://') == has(self.s3)",message="spec.bundle.s3 (the Secret with the endpoint and credentials) is required for an s3:// uri and only allowed with one",fieldPath=".uri"
type BundleStorage struct {
	// uri is "pvc://CLAIM/PATH" (the training Job mounts the claim read-write and writes PATH;
	// verification mounts it read-only) or "s3://BUCKET/KEY" (written and read through the S3
	// API with the credentials in s3.secretName).
	// +kubebuilder:validation:MinLength=8
	// +kubebuilder:validation:MaxLength=2048
	// +required
	URI string `json:"uri"`

	// s3 says how the Jobs reach an s3:// uri.
	// +optional
	S3 *S3Access `json:"s3,omitempty"`

	// reclaimPolicy says what becomes of the bundle at uri when the ModelWatermark is deleted,
	// as a PersistentVolume's does for its volume. Delete (the default): before the resource
	// goes, a cleanup Job removes the sealed bundle recorded in status.bundle, and only if the
	// bytes there still have the recorded digest; the claim of a pvc:// uri is never deleted,
	// only the file. Retain: the bundle stays. Changing it does not retrain; setting Retain on a
	// resource being deleted stops a cleanup that has not started.
	// +kubebuilder:default=Delete
	// +optional
	ReclaimPolicy BundleReclaimPolicy `json:"reclaimPolicy,omitempty"`
}

// BundleReclaimPolicy is what happens to a bundle on a PVC or in S3 when its ModelWatermark is
// deleted. A bundle in the default Secret is always deleted with the resource (owner reference).
// +kubebuilder:validation:Enum=Delete;Retain
type BundleReclaimPolicy string

const (
	// BundleReclaimDelete deletes the recorded bundle through a cleanup Job before the resource
	// is removed (finalizer FinalizerBundleCleanup).
	BundleReclaimDelete BundleReclaimPolicy = "Delete"
	// BundleReclaimRetain leaves the bundle where it is.
	BundleReclaimRetain BundleReclaimPolicy = "Retain"
)

// FinalizerBundleCleanup holds a ModelWatermark with reclaimPolicy Delete until its bundle's
// cleanup Job has run, failed, or timed out. Removing it by hand (kubectl patch ... --type=merge
// -p '{"metadata":{"finalizers":null}}') deletes the resource and leaves the bundle.
const FinalizerBundleCleanup = "fragile.dev/bundle-cleanup"

// S3Access names the Secret, in the resource's namespace, that tells the Jobs how to reach
// S3-compatible storage. Its data keys are the AWS tools' names: AWS_ENDPOINT_URL
// (https://HOST[:PORT]), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optionally AWS_REGION
// (default us-east-1) and ca.crt (a PEM bundle to trust for a private CA). The Secret is
// mounted into the Jobs only; the manager never reads it.
type S3Access struct {
	// secretName is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	SecretName string `json:"secretName"`
}

// ModelVolume is a volume mounted read-only into the training and verification Jobs. It
// offers the volume sources a model file plausibly lives on, each with its usual Kubernetes
// meaning; the API server validates the source itself when the operator creates a Job, and a
// rejected volume shows up in the Watermarked condition with reason JobRejected. Pod Security
// Admission still applies to the Jobs' Pods, so a namespace that forbids hostPath keeps
// forbidding it here.
//
// +kubebuilder:validation:XValidation:rule="[has(self.hostPath), has(self.persistentVolumeClaim), has(self.nfs), has(self.csi), has(self.image), has(self.configMap)].filter(x, x).size() == 1",message="spec.model.volume must set exactly one of hostPath, persistentVolumeClaim, nfs, csi, image, configMap"
type ModelVolume struct {
	// mountPath is where the volume appears inside the Jobs' container; spec.model.uri must be a
	// file under it.
	// +kubebuilder:validation:Pattern=`^/[^\s]*[^/\s]$`
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/var/run/fragile') && !self.startsWith('/dev') && !self.startsWith('/proc') && !self.startsWith('/sys')",message="mountPath must not shadow /var/run/fragile, /dev, /proc or /sys"
	// +kubebuilder:validation:MaxLength=1024
	// +required
	MountPath string `json:"mountPath"`

	// hostPath is a directory on the node; the local demo cluster uses it.
	// +optional
	HostPath *corev1.HostPathVolumeSource `json:"hostPath,omitempty"`
	// persistentVolumeClaim is a claim in this namespace (pvc://CLAIM/PATH is the shorter way).
	// +optional
	PersistentVolumeClaim *corev1.PersistentVolumeClaimVolumeSource `json:"persistentVolumeClaim,omitempty"`
	// nfs is an NFS export.
	// +optional
	NFS *corev1.NFSVolumeSource `json:"nfs,omitempty"`
	// csi is an inline CSI volume.
	// +optional
	CSI *corev1.CSIVolumeSource `json:"csi,omitempty"`
	// image is an OCI image or artifact mounted as a volume (for "modelcar" images).
	// +optional
	Image *corev1.ImageVolumeSource `json:"image,omitempty"`
	// configMap is a ConfigMap in this namespace; only small models fit in its 1 MiB.
	// +optional
	ConfigMap *corev1.ConfigMapVolumeSource `json:"configMap,omitempty"`
}

// InputRange is a closed interval of input values. Bounds are decimal strings, not floats,
// because Kubernetes API conventions avoid floating-point fields: "0", "255", "-1.5".
//
// +kubebuilder:validation:XValidation:rule="double(self.min) < double(self.max)",message="inputRange.min must be less than inputRange.max"
type InputRange struct {
	// min is the smallest input value, as a decimal string.
	// +kubebuilder:validation:XValidation:rule="self.matches('^-?(0|[1-9][0-9]{0,14})([.][0-9]{1,15})?$')",message="must be a decimal number such as 0, 255 or -1.5 (no exponent, no leading zeros)"
	// +kubebuilder:validation:MaxLength=32
	// +required
	Min string `json:"min"`

	// max is the largest input value, as a decimal string.
	// +kubebuilder:validation:XValidation:rule="self.matches('^-?(0|[1-9][0-9]{0,14})([.][0-9]{1,15})?$')",message="must be a decimal number such as 0, 255 or -1.5 (no exponent, no leading zeros)"
	// +kubebuilder:validation:MaxLength=32
	// +required
	Max string `json:"max"`
}

// SecretKeyReference selects one data key of a Secret in the resource's namespace.
type SecretKeyReference struct {
	// name is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// key is the data key inside the Secret.
	// +kubebuilder:default=key
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// TrainingSpec tunes the Job that generates triggers and seals the bundle.
type TrainingSpec struct {
	// lambda weighs the term that pushes triggers towards decision boundaries against the
	// term that makes them match the key, as a decimal string. Larger values make triggers
	// more fragile but training slower to converge. Unset: the `fragile` default.
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|[1-9][0-9]{0,9})([.][0-9]{1,9})?$')",message="lambda must be a non-negative decimal number such as 150 or 0.5"
	// +kubebuilder:validation:MaxLength=20
	// +optional
	Lambda string `json:"lambda,omitempty"`

	// maxSteps bounds the number of optimisation steps. Unset: the `fragile` default.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MaxSteps *int32 `json:"maxSteps,omitempty"`

	// timeoutSeconds is the training Job's activeDeadlineSeconds: a run still going after it
	// fails with reason TrainingFailed.
	// +kubebuilder:default=3600
	// +kubebuilder:validation:Minimum=60
	// +kubebuilder:validation:Maximum=86400
	// +optional
	TimeoutSeconds int64 `json:"timeoutSeconds,omitempty"`

	// resources are the training container's compute requests and limits.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// maxAttempts is how many training Jobs are run, at most, for one watermark: a failed
	// attempt (crash, eviction, timeout, unreachable model, failed report) is retried after an
	// exponential backoff until this many attempts have failed, then Watermarked turns False
	// with reason TrainingFailed. 1 disables retries.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +optional
	MaxAttempts int32 `json:"maxAttempts,omitempty"`

	// retryDelaySeconds is the wait after the first failed attempt; each further failure doubles
	// it (30 s, 60 s, 120 s, ...), capped at one hour. The Watermarked condition (reason
	// TrainingBackoff) and status.training.nextAttemptTime say when the next attempt starts.
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	// +optional
	RetryDelaySeconds int32 `json:"retryDelaySeconds,omitempty"`
}

// DefaultVerificationPeriodSeconds is spec.verification.periodSeconds when unset. The CRD's
// default marker below must carry the same number (markers cannot name a constant); a test
// compares the generated CRD with this constant.
const DefaultVerificationPeriodSeconds = 600

// VerificationSpec says how often the model is re-checked.
type VerificationSpec struct {
	// periodSeconds is the time from the start of one verification to the start of the next.
	// The first verification starts as soon as training has finished.
	// +kubebuilder:default=600
	// +kubebuilder:validation:Minimum=60
	// +kubebuilder:validation:Maximum=2592000
	// +optional
	PeriodSeconds int32 `json:"periodSeconds,omitempty"`

	// timeoutSeconds is each verification Job's activeDeadlineSeconds: a Job still running
	// after it counts as "could not verify" (Intact=Unknown), never as tampering.
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=86400
	// +optional
	TimeoutSeconds int64 `json:"timeoutSeconds,omitempty"`

	// resources are the verification container's compute requests and limits.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// VerificationResult is the verdict of one verification Job.
// +kubebuilder:validation:Enum=Intact;Tampered;Failed
type VerificationResult string

const (
	// VerificationIntact means every trigger still received its key label.
	VerificationIntact VerificationResult = "Intact"
	// VerificationTampered means at least one trigger's label changed.
	VerificationTampered VerificationResult = "Tampered"
	// VerificationFailed means the Job could not reach a verdict (unreadable model, wrong key,
	// corrupt bundle, crash, timeout, missing or garbled report). It is never tampering.
	VerificationFailed VerificationResult = "Failed"
)

// ModelWatermarkStatus is the observed state, rebuilt by the controller on every
// reconcile from the Jobs, Pods and Secrets it owns.
type ModelWatermarkStatus struct {
	// observedGeneration is the metadata.generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions are Watermarked, Intact and the summary Ready; see the Condition* and Reason*
	// constants of this package for what each status and reason means.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// modelDigest is "sha256:<hex>" of the model bytes last read by a training or
	// verification Job.
	// +optional
	ModelDigest string `json:"modelDigest,omitempty"`

	// bundle says where the sealed trigger bundle of the current watermark lives.
	// +optional
	Bundle *BundleStatus `json:"bundle,omitempty"`

	// training describes the training Job of the current watermark.
	// +optional
	Training *TrainingStatus `json:"training,omitempty"`

	// lastVerification is the outcome of the newest finished verification Job.
	// +optional
	LastVerification *VerificationStatus `json:"lastVerification,omitempty"`

	// lastSuccessfulVerificationTime is when the newest verification that reached a verdict
	// (Intact or Tampered) finished. Alerts on stale verification read it.
	// +optional
	LastSuccessfulVerificationTime *metav1.Time `json:"lastSuccessfulVerificationTime,omitempty"`

	// endpointURL is the base URL the verification Jobs send the triggers to, from
	// spec.endpoint.url or resolved from spec.endpoint.inferenceServiceRef.
	// +optional
	EndpointURL string `json:"endpointURL,omitempty"`

	// nextVerificationTime is when the next verification Job is due.
	// +optional
	NextVerificationTime *metav1.Time `json:"nextVerificationTime,omitempty"`
}

// BundleStatus locates the sealed bundle. The bundle holds the triggers encrypted under the
// key; the key itself is never copied into it.
type BundleStatus struct {
	// uri is where the bundle is: pvc://CLAIM/PATH or s3://BUCKET/KEY; unset for a Secret.
	// +optional
	URI string `json:"uri,omitempty"`
	// secretName is the Secret in this namespace that holds the bundle, when it is in one.
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// key is the data key inside that Secret.
	// +optional
	Key string `json:"key,omitempty"`
	// digest is "sha256:<hex>" of the sealed bundle bytes, as written by the training Job.
	// +optional
	Digest string `json:"digest,omitempty"`
	// keyID is the public fingerprint of the key the bundle was sealed with (not the key).
	// +optional
	KeyID string `json:"keyID,omitempty"`
	// sizeBytes is the size of the sealed bundle.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`
}

// TrainingStatus describes a training Job.
type TrainingStatus struct {
	// jobName is the training Job's name (of the newest attempt).
	JobName string `json:"jobName"`
	// attempt is the number of that Job's attempt, from 1 to spec.training.maxAttempts.
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// nextAttemptTime is when the next attempt starts, while a failed attempt waits for its
	// retry; unset otherwise.
	// +optional
	NextAttemptTime *metav1.Time `json:"nextAttemptTime,omitempty"`
	// progress is the Job's latest progress line while it runs, e.g. "step 40/300, key match 87%"
	// while training, then "tie refinement 3/20, 74% of triggers tied".
	// +optional
	Progress string `json:"progress,omitempty"`
	// startTime is when the Job started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when the Job finished, successfully or not.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// steps is the number of optimisation steps the finished run took.
	// +optional
	Steps int32 `json:"steps,omitempty"`
	// keyMatchPercent is the share of triggers labelled as the key says when training ended.
	// +optional
	KeyMatchPercent int32 `json:"keyMatchPercent,omitempty"`
}

// VerificationStatus is the outcome of one finished verification Job.
type VerificationStatus struct {
	// jobName is the verification Job's name.
	JobName string `json:"jobName"`
	// time is when the Job finished.
	Time metav1.Time `json:"time"`
	// result is the verdict: Intact, Tampered, or Failed (no verdict).
	Result VerificationResult `json:"result"`
	// totalTriggers is how many triggers were checked; unset when the Job reached no verdict.
	// +optional
	TotalTriggers *int32 `json:"totalTriggers,omitempty"`
	// mismatchedTriggers is how many triggers no longer received their key label: 0 when
	// intact, unset when the Job reached no verdict (a count from a failed run means nothing).
	// +optional
	MismatchedTriggers *int32 `json:"mismatchedTriggers,omitempty"`
	// digestMatches says whether the verified bytes equal the bytes that were watermarked.
	// Intact with different bytes means a benign re-serialisation kept every label.
	// +optional
	DigestMatches bool `json:"digestMatches,omitempty"`
	// message explains a Failed result in words, as reported by the Job.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// ModelWatermark asks the operator to fragile-watermark a deployed model and to verify it
// periodically. Watermarking never changes the model: it trains trigger inputs that sit on the
// model's decision boundaries, so any change to the weights flips some of their labels.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mw,categories=fragile
// +kubebuilder:printcolumn:name="Watermarked",type=string,JSONPath=`.status.conditions[?(@.type=="Watermarked")].status`
// +kubebuilder:printcolumn:name="Intact",type=string,JSONPath=`.status.conditions[?(@.type=="Intact")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Mismatched",type=integer,JSONPath=`.status.lastVerification.mismatchedTriggers`
// +kubebuilder:printcolumn:name="Last Verified",type=date,JSONPath=`.status.lastVerification.time`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="URI",type=string,priority=1,JSONPath=`.spec.model.uri`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 40",message="metadata.name must be at most 40 characters: the operator derives Job names (limited to 63) from it"
type ModelWatermark struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec ModelWatermarkSpec `json:"spec"`

	// status is the observed state, written only by the operator.
	// +optional
	Status ModelWatermarkStatus `json:"status,omitempty"`
}

// ModelWatermarkList is a list of ModelWatermark.
//
// +kubebuilder:object:root=true
type ModelWatermarkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ModelWatermark `json:"items"`
}
