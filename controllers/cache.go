package controllers

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions restricts the manager's cache to what the controller reads. Jobs, Pods and
// Secrets are cached only when they carry the operator's managed-by label: the manager then
// holds no copy of other workloads' Pods or of the cluster's Secrets (and Secrets only as
// metadata, see SetupWithManager). Transforms drop the fields the controller never reads, which
// is most of each Job and Pod; the objects in the cache are therefore partial and must never be
// written back with Update (the controller only patches them).
func CacheOptions() cache.Options {
	owned := labels.SelectorFromSet(labels.Set{labelManagedBy: managedBy})
	strip := cache.TransformStripManagedFields()
	return cache.Options{
		DefaultTransform: strip,
		ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}: {Label: owned, Transform: func(in any) (any, error) {
				if j, ok := in.(*batchv1.Job); ok {
					j.Spec.Template = corev1.PodTemplateSpec{}
				}
				return strip(in)
			}},
			&corev1.Pod{}: {Label: owned, Transform: func(in any) (any, error) {
				if p, ok := in.(*corev1.Pod); ok {
					p.Spec = corev1.PodSpec{}
					p.Status = corev1.PodStatus{Phase: p.Status.Phase, ContainerStatuses: p.Status.ContainerStatuses}
				}
				return strip(in)
			}},
			&corev1.Secret{}: {Label: owned},
		},
	}
}
