package v1alpha1

// EndpointSource is a live model served over the Open Inference Protocol (KServe V2,
// REST): KServe, Triton, MLServer, OpenVINO Model Server or `fragile serve`. When a
// ModelWatermark has one, its verification Jobs send the triggers to this endpoint and
// compare the top-1 answers with the key, instead of reading spec.model.uri: they check
// what is served, not what is stored. Training still reads spec.model (it needs the
// weights' gradients).
//
// +kubebuilder:validation:XValidation:rule="has(self.url) != has(self.inferenceServiceRef)",message="spec.endpoint must set exactly one of url and inferenceServiceRef"
// +kubebuilder:validation:XValidation:rule="has(self.inferenceServiceRef) || has(self.modelName)",message="spec.endpoint.modelName is required with spec.endpoint.url"
type EndpointSource struct {
	// url is the server's base URL, e.g. http://mnist-predictor.models.svc.cluster.local:8080;
	// /v2/models/NAME/... is appended to it. Credentials do not belong in it: use authSecretRef.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/?#@\\\\s]+(/[^?#\\\\s]*)?$')",message="url must be http(s)://HOST[:PORT][/PREFIX], without credentials, query or fragment"
	// +optional
	URL string `json:"url,omitempty"`

	// inferenceServiceRef names a KServe InferenceService in this namespace; the URL is read
	// from its status.address.url (the cluster-internal address), else status.url, before each
	// verification.
	// +optional
	InferenceServiceRef *LocalObjectReference `json:"inferenceServiceRef,omitempty"`

	// modelName is the model's name on the server, as in /v2/models/NAME. Default with
	// inferenceServiceRef: the InferenceService's name.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][-._A-Za-z0-9]*$`
	// +optional
	ModelName string `json:"modelName,omitempty"`

	// modelVersion selects /v2/models/NAME/versions/VERSION; unset uses the server's default.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][-._A-Za-z0-9]*$`
	// +optional
	ModelVersion string `json:"modelVersion,omitempty"`

	// authSecretRef names a Secret in this namespace holding the credentials the verification
	// Job sends with every request: data key "token" as "Authorization: Bearer <token>", every
	// other data key as a header of that name (e.g. "X-Api-Key"). Only the Job mounts it.
	// +optional
	AuthSecretRef *LocalObjectReference `json:"authSecretRef,omitempty"`

	// caConfigMapRef selects a ConfigMap key in this namespace holding the PEM certificates of
	// the CA that signed an https server's certificate, in place of the system roots.
	// +optional
	CAConfigMapRef *ConfigMapKeyReference `json:"caConfigMapRef,omitempty"`

	// requestTimeoutSeconds bounds each request to the server; a slower answer is retried,
	// then counts as "could not verify", never as tampering.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300
	// +optional
	RequestTimeoutSeconds int32 `json:"requestTimeoutSeconds,omitempty"`
}

// LocalObjectReference names an object in the resource's namespace.
type LocalObjectReference struct {
	// name is the object's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`
}

// ConfigMapKeyReference selects one data key of a ConfigMap in the resource's namespace.
type ConfigMapKeyReference struct {
	// name is the ConfigMap's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// key is the data key inside the ConfigMap.
	// +kubebuilder:default=ca.crt
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}
