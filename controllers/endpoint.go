package controllers

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
)

// Endpoint checks run in the verification Jobs, like artifact checks, never in the manager:
// the responses of an inference server are untrusted input, and a Job parses them with its
// own memory limit, its own timeout (activeDeadlineSeconds) and bounded bodies (see
// pkg/fragile/endpoint), while the manager only reads what the API server holds: the
// InferenceService's status and the Job's termination message (at most 4 KiB).

// inferenceServiceGVK is KServe's InferenceService, read as unstructured so the operator
// neither imports KServe nor needs its CRD unless a resource refers to one.
var inferenceServiceGVK = schema.GroupVersionKind{Group: "serving.kserve.io", Version: "v1beta1", Kind: "InferenceService"}

// endpointRetry is how often an unresolvable inferenceServiceRef is tried again: the
// operator does not watch InferenceServices.
const endpointRetry = keySecretRetry

// Paths of the endpoint credentials inside the verification Job's container.
const (
	endpointAuthDir = "/var/run/fragile/endpoint-auth"
	endpointCADir   = "/var/run/fragile/endpoint-ca"
	endpointCAFile  = "ca.crt"
)

// endpointTarget is the live model a verification Job checks.
type endpointTarget struct {
	url, model, version string
}

// +kubebuilder:rbac:groups=serving.kserve.io,resources=inferenceservices,verbs=get

// resolveEndpoint turns spec.endpoint into a target. problem is set, and the target nil,
// when the reference cannot be resolved now (no such InferenceService, no URL yet, KServe not
// installed, not allowed to read it); err only for errors worth a retry with backoff.
func (r *ModelWatermarkReconciler) resolveEndpoint(ctx context.Context, mw *fragilev1alpha1.ModelWatermark) (t *endpointTarget, problem string, err error) {
	ep := mw.Spec.Endpoint
	t = &endpointTarget{url: ep.URL, model: ep.ModelName, version: ep.ModelVersion}
	if ref := ep.InferenceServiceRef; ref != nil {
		isvc := &unstructured.Unstructured{}
		isvc.SetGroupVersionKind(inferenceServiceGVK)
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: mw.Namespace, Name: ref.Name}, isvc)
		switch {
		case meta.IsNoMatchError(err):
			return nil, fmt.Sprintf("spec.endpoint.inferenceServiceRef names InferenceService %s, but KServe's InferenceService API (serving.kserve.io/v1beta1) is not installed", ref.Name), nil
		case apierrors.IsNotFound(err):
			return nil, fmt.Sprintf("InferenceService %s named by spec.endpoint.inferenceServiceRef does not exist in namespace %s", ref.Name, mw.Namespace), nil
		case apierrors.IsForbidden(err):
			return nil, fmt.Sprintf("the operator may not read InferenceService %s: %v", ref.Name, err), nil
		case err != nil:
			return nil, "", fmt.Errorf("reading InferenceService %s: %w", ref.Name, err)
		}
		t.url, _, _ = unstructured.NestedString(isvc.Object, "status", "address", "url")
		if t.url == "" {
			t.url, _, _ = unstructured.NestedString(isvc.Object, "status", "url")
		}
		if t.url == "" {
			return nil, fmt.Sprintf("InferenceService %s has no URL in its status yet (status.address.url and status.url are empty): is it ready?", ref.Name), nil
		}
		if t.model == "" {
			t.model = ref.Name
		}
	}
	// The CRD validates spec.endpoint.url; a URL from an InferenceService's status is checked here.
	if u, err := url.Parse(t.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Sprintf("endpoint URL %q is not an http(s) URL without credentials", t.url), nil
	}
	return t, "", nil
}

// endpointArgs are the `fragile verify` flags, volumes and mounts that point a verification
// Job at a live endpoint instead of a model file.
func endpointArgs(mw *fragilev1alpha1.ModelWatermark, t *endpointTarget) ([]string, []corev1.Volume, []corev1.VolumeMount) {
	ep := mw.Spec.Endpoint
	timeout := ep.RequestTimeoutSeconds
	if timeout <= 0 {
		timeout = 10
	}
	args := []string{"--endpoint", t.url, "--model-name", t.model}
	if t.version != "" {
		args = append(args, "--model-version", t.version)
	}
	args = append(args, "--timeout", strconv.Itoa(int(timeout))+"s")
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	if ref := ep.AuthSecretRef; ref != nil {
		args = append(args, "--auth-dir", endpointAuthDir)
		volumes = append(volumes, corev1.Volume{Name: "endpoint-auth", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: ref.Name, DefaultMode: ptr.To[int32](0o440),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "endpoint-auth", MountPath: endpointAuthDir, ReadOnly: true})
	}
	if ref := ep.CAConfigMapRef; ref != nil {
		key := ref.Key
		if key == "" {
			key = endpointCAFile
		}
		args = append(args, "--ca-file", endpointCADir+"/"+endpointCAFile)
		volumes = append(volumes, corev1.Volume{Name: "endpoint-ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name},
			Items:                []corev1.KeyToPath{{Key: key, Path: endpointCAFile}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "endpoint-ca", MountPath: endpointCADir, ReadOnly: true})
	}
	return args, volumes, mounts
}
