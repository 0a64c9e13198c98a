package controllers

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

// Where a sealed bundle lives, per spec.bundle, and how each Job kind reaches it. The manager
// never reads a bundle or the storage credentials: it mounts the right volume or Secret into the
// Jobs and records the digest the training Job reported, which the verification Job checks.
//
//	Secret (default)   data key "bundle" of Secret <name>-bundle, written by the training Job
//	                   through the API (its Role allows that one Secret), mounted read-only for
//	                   verification. Deleted with the resource (owner reference).
//	pvc://CLAIM/PATH   the claim mounted read-write at bundleStoreDir for training, read-only for
//	                   verification. With reclaimPolicy Delete a cleanup Job deletes the file
//	                   (never the claim) when the resource goes (cleanup.go).
//	s3://BUCKET/KEY    written and read through the S3 API with the Secret spec.bundle.s3 names,
//	                   mounted into the Jobs only. With reclaimPolicy Delete a cleanup Job
//	                   deletes the object when the resource goes.
//
// In every case the bundle Secret exists: it carries the training Job's progress line, the
// watermark-hash reservation and the sealed bundle's digest (empty of data off-Secret).

type bundleKind int

const (
	bundleInSecret bundleKind = iota
	bundleOnPVC
	bundleInS3
)

const (
	// bundleStoreDir is where a bundle PVC is mounted in the Jobs.
	bundleStoreDir = "/var/run/fragile/bundle-store"
	// s3ModelDir and s3BundleDir are where the S3 Secrets of the model and the bundle are mounted.
	s3ModelDir  = "/var/run/fragile/s3/model"
	s3BundleDir = "/var/run/fragile/s3/bundle"

	bundleStoreVolume = "bundle-store"
	s3ModelVolume     = "s3-model"
	s3BundleVolume    = "s3-bundle"
)

// bundleLocation is how the Jobs reach the bundle.
type bundleLocation struct {
	kind bundleKind
	uri  string // spec.bundle.uri; empty for the Secret
	// path is the bundle's reference inside a Job: a file path, or the s3:// URI itself.
	path string
	// claim is the PVC of a pvc:// bundle; s3Secret the credentials Secret of an s3:// one.
	claim, s3Secret string
}

// locateBundle reads spec.bundle. The CRD's CEL rules admit only the two URI forms.
func locateBundle(mw *fragilev1alpha1.ModelWatermark) bundleLocation {
	b := mw.Spec.Bundle
	if b == nil || b.URI == "" {
		return bundleLocation{kind: bundleInSecret, path: bundleMountDir + "/" + contract.BundleDataKey}
	}
	return bundleAt(b.URI, b.S3)
}

// bundleAt is the location of an off-Secret bundle at uri (pvc:// or s3://).
func bundleAt(uri string, s3 *fragilev1alpha1.S3Access) bundleLocation {
	if strings.HasPrefix(uri, "s3://") {
		loc := bundleLocation{kind: bundleInS3, uri: uri, path: uri}
		if s3 != nil {
			loc.s3Secret = s3.SecretName
		}
		return loc
	}
	claim, path, _ := strings.Cut(strings.TrimPrefix(uri, "pvc://"), "/")
	return bundleLocation{kind: bundleOnPVC, uri: uri, claim: claim, path: bundleStoreDir + "/" + path}
}

// s3SecretVolume mounts an S3 credentials Secret as a directory of files, as pkg/storage reads it.
func s3SecretVolume(volume, secret, dir string) (corev1.Volume, corev1.VolumeMount) {
	return corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: secret, DefaultMode: ptr.To[int32](0o440),
		}}},
		corev1.VolumeMount{Name: volume, MountPath: dir, ReadOnly: true}
}

// trainingArgs, volumes and mounts for writing the bundle.
func (b bundleLocation) training(mw *fragilev1alpha1.ModelWatermark) ([]string, []corev1.Volume, []corev1.VolumeMount) {
	switch b.kind {
	case bundleOnPVC:
		return []string{"--out", b.path, "--progress-secret", bundleSecretName(mw)},
			[]corev1.Volume{{Name: bundleStoreVolume, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: b.claim},
			}}},
			[]corev1.VolumeMount{{Name: bundleStoreVolume, MountPath: bundleStoreDir}}
	case bundleInS3:
		v, m := s3SecretVolume(s3BundleVolume, b.s3Secret, s3BundleDir)
		return []string{"--out", b.path, "--out-s3-credentials", s3BundleDir, "--progress-secret", bundleSecretName(mw)},
			[]corev1.Volume{v}, []corev1.VolumeMount{m}
	}
	return []string{"--out-secret", bundleSecretName(mw)}, nil, nil
}

// verification args, volumes and mounts for reading the bundle.
func (b bundleLocation) verification(mw *fragilev1alpha1.ModelWatermark) ([]string, []corev1.Volume, []corev1.VolumeMount) {
	switch b.kind {
	case bundleOnPVC:
		return []string{"--bundle", b.path},
			[]corev1.Volume{{Name: bundleStoreVolume, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: b.claim, ReadOnly: true},
			}}},
			[]corev1.VolumeMount{{Name: bundleStoreVolume, MountPath: bundleStoreDir, ReadOnly: true}}
	case bundleInS3:
		v, m := s3SecretVolume(s3BundleVolume, b.s3Secret, s3BundleDir)
		return []string{"--bundle", b.path, "--bundle-s3-credentials", s3BundleDir}, []corev1.Volume{v}, []corev1.VolumeMount{m}
	}
	return []string{"--bundle", b.path},
		[]corev1.Volume{{Name: "bundle", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  bundleSecretName(mw),
			Items:       []corev1.KeyToPath{{Key: contract.BundleDataKey, Path: contract.BundleDataKey}},
			DefaultMode: ptr.To[int32](0o440),
		}}}},
		[]corev1.VolumeMount{{Name: "bundle", MountPath: bundleMountDir, ReadOnly: true}}
}

// cleanup args, volumes and mounts for deleting the bundle (cleanup.go): the claim read-write,
// or the S3 Secret.
func (b bundleLocation) cleanup() ([]string, []corev1.Volume, []corev1.VolumeMount) {
	if b.kind == bundleInS3 {
		v, m := s3SecretVolume(s3BundleVolume, b.s3Secret, s3BundleDir)
		return []string{"--bundle", b.path, "--bundle-s3-credentials", s3BundleDir}, []corev1.Volume{v}, []corev1.VolumeMount{m}
	}
	return []string{"--bundle", b.path},
		[]corev1.Volume{{Name: bundleStoreVolume, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: b.claim},
		}}},
		[]corev1.VolumeMount{{Name: bundleStoreVolume, MountPath: bundleStoreDir}}
}

// sealedDigest is the digest of the current watermark's sealed bundle, "" when there is none.
// The training Job records it on the bundle Secret whatever the storage, under the watermark
// hash reservation.
func (o *observation) sealedDigest() string {
	if o.bundle != nil && o.bundle.Annotations[contract.AnnotationWatermarkHash] == o.hash {
		return o.bundle.Annotations[contract.AnnotationBundleDigest]
	}
	return ""
}

// bundlePlace names where the bundle is, for condition messages.
func bundlePlace(mw *fragilev1alpha1.ModelWatermark) string {
	if b := locateBundle(mw); b.kind != bundleInSecret {
		return b.uri
	}
	return "Secret " + bundleSecretName(mw)
}

// failureReason is the Intact reason for a verification that could not run, and what a person
// can do about it, from the cause its report gave.
func failureReason(mw *fragilev1alpha1.ModelWatermark, cause string) (reason, hint string) {
	secret := "the S3 Secret"
	if b := mw.Spec.Bundle; b != nil && b.S3 != nil {
		secret = "Secret " + b.S3.SecretName
	} else if mw.Spec.Model.S3 != nil {
		secret = "Secret " + mw.Spec.Model.S3.SecretName
	}
	switch cause {
	case contract.CauseStorageUnreachable:
		return fragilev1alpha1.ReasonStorageUnreachable, fmt.Sprintf("check the endpoint in %s, that it is up "+
			"and reachable from the Jobs' namespace, and its ca.crt for a private CA; ", secret)
	case contract.CauseStorageAccessDenied:
		return fragilev1alpha1.ReasonStorageAccessDenied, fmt.Sprintf("check the access key in %s and that it "+
			"may read %s; ", secret, bundlePlace(mw))
	case contract.CauseBundleNotFound:
		return fragilev1alpha1.ReasonBundleNotFound, fmt.Sprintf("restore the bundle at %s, or delete the "+
			"training Jobs to watermark afresh; ", bundlePlace(mw))
	case contract.CauseBundleDigestMismatch:
		return fragilev1alpha1.ReasonBundleDigestMismatch, fmt.Sprintf("the bytes at %s are not the sealed "+
			"bundle; restore it, or delete the training Jobs to watermark afresh; ", bundlePlace(mw))
	}
	return fragilev1alpha1.ReasonVerificationFailed, ""
}
