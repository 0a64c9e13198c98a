package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

// Names of the objects a ModelWatermark owns. Every name is derived from the resource's name
// (at most 40 characters, enforced by the CRD) so that a retry after a stale cache read finds
// the object it created before instead of creating a second one.
func keySecretName(mw *fragilev1alpha1.ModelWatermark) string    { return mw.Name + "-key" }
func bundleSecretName(mw *fragilev1alpha1.ModelWatermark) string { return mw.Name + "-bundle" }
func trainerName(mw *fragilev1alpha1.ModelWatermark) string      { return mw.Name + "-trainer" }

// trainingJobName embeds the watermark hash, so a spec change that invalidates the watermark
// yields a new Job name and a change that does not (period, training knobs) keeps the old Job,
// and the attempt number from the second attempt on: 40 + len("-train-") + 10 + len("-10") = 60,
// under the 63 the job-name label allows.
func trainingJobName(mw *fragilev1alpha1.ModelWatermark, hash string, attempt int32) string {
	if attempt <= 1 {
		return mw.Name + "-train-" + hash
	}
	return fmt.Sprintf("%s-train-%s-%d", mw.Name, hash, attempt)
}

// verificationJobName embeds the scheduled time, as CronJob does, so the same schedule slot
// always maps to the same name. 40 + len("-verify-") + 10 digits = 58, under the 63 allowed
// for the job-name label the Job controller puts on Pods.
func verificationJobName(mw *fragilev1alpha1.ModelWatermark, scheduled time.Time) string {
	return fmt.Sprintf("%s-verify-%d", mw.Name, scheduled.Unix())
}

const (
	// managedBy marks every object the operator creates; the manager's cache only holds Jobs,
	// Pods and Secrets carrying it (see CacheOptions), so it never caches the cluster's Secrets.
	labelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "fragile-operator"
	labelName      = "app.kubernetes.io/name"
	labelComponent = "app.kubernetes.io/component"

	componentTraining     = "training"
	componentVerification = "verification"
	componentKey          = "key"
	componentBundle       = "bundle"

	// annotationAttempt on a training Job is its attempt number, from 1.
	annotationAttempt = "fragile.dev/attempt"
	// annotationScheduledTime on a verification Job is the schedule slot it fills (RFC 3339).
	annotationScheduledTime = "fragile.dev/scheduled-time"
	// annotationTerminationMessage and annotationExitCode copy a finished Job's report from
	// its Pod onto the Job, so the verdict survives Pod garbage collection and later reconciles
	// need not look at Pods again.
	annotationTerminationMessage = "fragile.dev/termination-message"
	annotationExitCode           = "fragile.dev/exit-code"

	// jobNameLabel is set by the Job controller on the Pods of a Job.
	jobNameLabel = "batch.kubernetes.io/job-name"

	// containerName is the single container of both Job kinds.
	containerName = "fragile"

	// Paths inside the Jobs' container.
	keyMountDir     = "/var/run/fragile/key"
	bundleMountDir  = "/var/run/fragile/bundle"
	pvcMountDir     = "/mnt/models"
	terminationPath = "/dev/termination-log"
)

// ownedLabels are the labels of every object owned by mw.
func ownedLabels(mw *fragilev1alpha1.ModelWatermark, component string) map[string]string {
	return map[string]string{
		labelName:                           "fragile",
		labelManagedBy:                      managedBy,
		labelComponent:                      component,
		fragilev1alpha1.LabelModelWatermark: mw.Name,
	}
}

// keyRef resolves which Secret and data key hold mw's key.
func keyRef(mw *fragilev1alpha1.ModelWatermark) (name, key string, generated bool) {
	if ref := mw.Spec.KeySecretRef; ref != nil {
		key = ref.Key
		if key == "" {
			key = contract.KeyDataKey
		}
		return ref.Name, key, false
	}
	return keySecretName(mw), contract.KeyDataKey, true
}

// watermarkHash identifies a watermark: it covers exactly the spec fields whose change makes
// an existing bundle meaningless (which model, which inputs, how many triggers, which key) and
// none that merely tune how Jobs run. Ten hex digits (40 bits) keep Job names short; a
// collision would need two specs of the same resource to collide.
func watermarkHash(mw *fragilev1alpha1.ModelWatermark) string {
	name, key, generated := keyRef(mw)
	identity := struct {
		URI        string                       `json:"uri"`
		SHA256     string                       `json:"sha256"`
		Volume     *fragilev1alpha1.ModelVolume `json:"volume"`
		InputRange fragilev1alpha1.InputRange   `json:"inputRange"`
		Input      *fragilev1alpha1.ModelInput  `json:"input,omitempty"` // omitted when unset: older hashes stay
		Bundle     string                       `json:"bundle,omitempty"`
		Triggers   int32                        `json:"triggers"`
		Key        [2]string                    `json:"key"`
		Generated  bool                         `json:"generated"`
	}{
		URI: mw.Spec.Model.URI, SHA256: mw.Spec.Model.SHA256, Volume: mw.Spec.Model.Volume,
		InputRange: mw.Spec.Model.InputRange, Input: mw.Spec.Model.Input, Triggers: mw.Spec.Triggers,
		Bundle: locateBundle(mw).uri,
		Key:    [2]string{name, key}, Generated: generated,
	}
	b, err := json.Marshal(identity)
	if err != nil {
		// Marshalling plain structs of strings cannot fail; a panic here is a programming error.
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10]
}

// modelLocation is how a Job reaches the model: the --model argument and, for files, the
// volume that holds them.
type modelLocation struct {
	arg    string
	volume *corev1.Volume
	mount  *corev1.VolumeMount
	// s3Secret is the credentials Secret of an s3:// model, mounted at s3ModelDir.
	s3Secret string
}

// args are the Job's model flags.
func (l modelLocation) args() []string {
	if l.s3Secret != "" {
		return []string{"--model", l.arg, "--model-s3-credentials", s3ModelDir}
	}
	return []string{"--model", l.arg}
}

// addVolumes appends the volumes that hold the model or its credentials.
func (l modelLocation) addVolumes(vs []corev1.Volume, ms []corev1.VolumeMount) ([]corev1.Volume, []corev1.VolumeMount) {
	if l.volume != nil {
		vs, ms = append(vs, *l.volume), append(ms, *l.mount)
	}
	if l.s3Secret != "" {
		v, m := s3SecretVolume(s3ModelVolume, l.s3Secret, s3ModelDir)
		vs, ms = append(vs, v), append(ms, m)
	}
	return vs, ms
}

const modelVolumeName = "model"

// locateModel turns spec.model into a Job argument and volume. The CRD's CEL rules already
// restrict uri to the three forms; the errors here guard against objects admitted before a
// rule existed.
func locateModel(m fragilev1alpha1.ModelSource) (modelLocation, error) {
	switch {
	case strings.HasPrefix(m.URI, "http://"), strings.HasPrefix(m.URI, "https://"):
		return modelLocation{arg: m.URI}, nil
	case strings.HasPrefix(m.URI, "s3://"):
		if m.S3 == nil || m.S3.SecretName == "" {
			return modelLocation{}, fmt.Errorf("uri %q needs spec.model.s3.secretName", m.URI)
		}
		return modelLocation{arg: m.URI, s3Secret: m.S3.SecretName}, nil
	case strings.HasPrefix(m.URI, "pvc://"):
		claim, path, ok := strings.Cut(strings.TrimPrefix(m.URI, "pvc://"), "/")
		if !ok || claim == "" || path == "" {
			return modelLocation{}, fmt.Errorf("uri %q must be pvc://CLAIM/PATH", m.URI)
		}
		return modelLocation{
			arg: pvcMountDir + "/" + path,
			volume: &corev1.Volume{Name: modelVolumeName, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: true},
			}},
			mount: &corev1.VolumeMount{Name: modelVolumeName, MountPath: pvcMountDir, ReadOnly: true},
		}, nil
	case strings.HasPrefix(m.URI, "/"):
		v := m.Volume
		if v == nil || !strings.HasPrefix(m.URI, v.MountPath+"/") {
			return modelLocation{}, fmt.Errorf("uri %q is a path, so spec.model.volume must hold it", m.URI)
		}
		return modelLocation{
			arg: m.URI,
			volume: &corev1.Volume{Name: modelVolumeName, VolumeSource: corev1.VolumeSource{
				HostPath:              v.HostPath,
				PersistentVolumeClaim: v.PersistentVolumeClaim,
				NFS:                   v.NFS,
				CSI:                   v.CSI,
				Image:                 v.Image,
				ConfigMap:             v.ConfigMap,
			}},
			mount: &corev1.VolumeMount{Name: modelVolumeName, MountPath: v.MountPath, ReadOnly: true},
		}, nil
	}
	return modelLocation{}, fmt.Errorf("uri %q is not pvc://, http(s):// or an absolute path", m.URI)
}
