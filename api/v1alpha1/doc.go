// Package v1alpha1 holds version v1alpha1 of the fragile.dev API group: the ModelWatermark
// resource, which asks the operator to fragile-watermark a deployed model once and then verify
// it on a schedule, reporting the outcome as conditions a person (kubectl describe) and an
// alerting system (Prometheus) can both read.
//
// The package imports nothing from pkg/fragile: the API is the contract with users, the report
// types in pkg/fragile are the contract with the Jobs, and the controller translates between them.
//
// +kubebuilder:object:generate=true
// +groupName=fragile.dev
package v1alpha1
