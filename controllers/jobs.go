package controllers

import (
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

// jobTemplate holds what the two Job kinds share.
type jobTemplate struct {
	name, component, hash string
	image                 string
	args                  []string
	env                   []corev1.EnvVar
	volumes               []corev1.Volume
	mounts                []corev1.VolumeMount
	resources             corev1.ResourceRequirements
	deadlineSeconds       int64
	serviceAccount        string // empty: the namespace default, with no token mounted
	annotations           map[string]string
}

// jobGracePeriod is the Pods' terminationGracePeriodSeconds: `fragile` stops its loops on
// SIGTERM within a second or two and writes its report, so a deleted or timed-out Job is gone
// well inside this.
const jobGracePeriod = 10

// newJob builds a Job that runs `fragile` once, never retries within the Job (backoffLimit 0: for
// verification exit status 1 is a verdict, not a failure to retry, and training retries are new
// Jobs, see training_retry.go), and reports through its termination message file.
func newJob(mw *fragilev1alpha1.ModelWatermark, t jobTemplate) *batchv1.Job {
	labels := ownedLabels(mw, t.component)
	labels[fragilev1alpha1.LabelWatermarkHash] = t.hash

	volumes := append([]corev1.Volume{{
		// The root filesystem is read-only; downloads and scratch files go here.
		Name:         "tmp",
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
	}}, t.volumes...)
	mounts := append([]corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}, t.mounts...)

	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        t.name,
			Namespace:   mw.Namespace,
			Labels:      labels,
			Annotations: t.annotations,
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:          ptr.To[int32](0),
			ActiveDeadlineSeconds: ptr.To(t.deadlineSeconds),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy:                 corev1.RestartPolicyNever,
					TerminationGracePeriodSeconds: ptr.To[int64](jobGracePeriod),
					ServiceAccountName:            t.serviceAccount,
					AutomountServiceAccountToken:  ptr.To(t.serviceAccount != ""),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:                     containerName,
						Image:                    t.image,
						Command:                  append([]string{"fragile"}, t.args...),
						Env:                      t.env,
						VolumeMounts:             mounts,
						Resources:                t.resources,
						TerminationMessagePath:   terminationPath,
						TerminationMessagePolicy: corev1.TerminationMessageReadFile,
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							RunAsNonRoot:             ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
					Volumes: volumes,
				},
			},
		},
	}
}

// keyVolume mounts only the key's data key, as the file "key", whatever it is called in the
// Secret, so the command line is the same for generated and referenced keys.
func keyVolume(mw *fragilev1alpha1.ModelWatermark) (corev1.Volume, corev1.VolumeMount) {
	name, key, _ := keyRef(mw)
	return corev1.Volume{Name: "key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  name,
			Items:       []corev1.KeyToPath{{Key: key, Path: contract.KeyDataKey}},
			DefaultMode: ptr.To[int32](0o440),
		}}},
		corev1.VolumeMount{Name: "key", MountPath: keyMountDir, ReadOnly: true}
}

// trainingJob runs `fragile watermark`. It is the only Job with API access: its per-resource
// ServiceAccount may get/patch/update the one bundle Secret and nothing else.
func trainingJob(mw *fragilev1alpha1.ModelWatermark, image, hash string, loc modelLocation, attempt int32) *batchv1.Job {
	kv, km := keyVolume(mw)
	bundleArgs, bundleVolumes, bundleMounts := locateBundle(mw).training(mw)
	args := append(append([]string{"watermark"}, loc.args()...),
		"--key", keyMountDir+"/"+contract.KeyDataKey)
	args = append(args, bundleArgs...)
	args = append(args,
		"--triggers", strconv.Itoa(int(mw.Spec.Triggers)),
		"--input-range", mw.Spec.Model.InputRange.Min+","+mw.Spec.Model.InputRange.Max,
	)
	if in := mw.Spec.Model.Input; in != nil {
		args = append(args, "--input-mean", strings.Join(in.Mean, ","), "--input-std", strings.Join(in.Std, ","))
	}
	if l := mw.Spec.Training.Lambda; l != "" {
		args = append(args, "--lambda", l)
	}
	if s := mw.Spec.Training.MaxSteps; s != nil {
		args = append(args, "--max-steps", strconv.Itoa(int(*s)))
	}
	args = append(args, "--report", terminationPath)

	t := jobTemplate{
		name: trainingJobName(mw, hash, attempt), component: componentTraining, hash: hash, image: image,
		annotations: map[string]string{annotationAttempt: strconv.Itoa(int(attempt))},
		args:        args,
		env: []corev1.EnvVar{
			{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: contract.EnvWatermarkHash, Value: hash},
		},
		volumes:         append([]corev1.Volume{kv}, bundleVolumes...),
		mounts:          append([]corev1.VolumeMount{km}, bundleMounts...),
		resources:       mw.Spec.Training.Resources,
		deadlineSeconds: mw.Spec.Training.TimeoutSeconds,
		serviceAccount:  trainerName(mw),
	}
	t.volumes, t.mounts = loc.addVolumes(t.volumes, t.mounts)
	return newJob(mw, t)
}

// verificationJob runs `fragile verify` with the bundle and key mounted read-only and no API
// token: it reads the model (or asks the live endpoint ep, when set), answers through its
// termination message, and can touch nothing. digest is the sealed bundle's recorded digest,
// which the Job checks before trusting the bundle.
func verificationJob(mw *fragilev1alpha1.ModelWatermark, image, hash string, loc modelLocation, ep *endpointTarget, scheduled time.Time, digest string) *batchv1.Job {
	kv, km := keyVolume(mw)
	bundleArgs, bundleVolumes, bundleMounts := locateBundle(mw).verification(mw)
	volumes := append([]corev1.Volume{kv}, bundleVolumes...)
	mounts := append([]corev1.VolumeMount{km}, bundleMounts...)
	target := loc.args()
	if ep != nil {
		var epVolumes []corev1.Volume
		var epMounts []corev1.VolumeMount
		target, epVolumes, epMounts = endpointArgs(mw, ep)
		volumes, mounts = append(volumes, epVolumes...), append(mounts, epMounts...)
	} else {
		volumes, mounts = loc.addVolumes(volumes, mounts)
	}
	args := append(append([]string{"verify"}, target...), bundleArgs...)
	if digest != "" {
		args = append(args, "--bundle-digest", digest)
	}
	args = append(args,
		"--key", keyMountDir+"/"+contract.KeyDataKey,
		"--json",
		"--report", terminationPath,
	)
	t := jobTemplate{
		name: verificationJobName(mw, scheduled), component: componentVerification, hash: hash, image: image,
		args:            args,
		volumes:         volumes,
		mounts:          mounts,
		resources:       mw.Spec.Verification.Resources,
		deadlineSeconds: mw.Spec.Verification.TimeoutSeconds,
		annotations:     map[string]string{annotationScheduledTime: scheduled.UTC().Format(time.RFC3339)},
	}
	return newJob(mw, t)
}

// jobFinished reports whether a Job reached a terminal condition, whether that was failure,
// and when. Jobs of verification fail on purpose when they find tampering (exit status 1), so
// "failed" here is only used to explain a missing report.
func jobFinished(j *batchv1.Job) (finished, failed bool, at time.Time, why string) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			at = c.LastTransitionTime.Time
			if j.Status.CompletionTime != nil {
				at = j.Status.CompletionTime.Time
			}
			return true, false, at, ""
		case batchv1.JobFailed:
			why = c.Reason
			if c.Message != "" {
				why += ": " + c.Message
			}
			return true, true, c.LastTransitionTime.Time, why
		}
	}
	return false, false, time.Time{}, ""
}

// scheduledTime is the schedule slot a verification Job fills, or false when the annotation
// is missing or garbled (such a Job is still pruned by age but never drives the schedule).
func scheduledTime(j *batchv1.Job) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, j.Annotations[annotationScheduledTime])
	return t, err == nil
}
