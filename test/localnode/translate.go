package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// defaultTerminationMessagePath is what the API server defaults an empty
// terminationMessagePath to.
const defaultTerminationMessagePath = "/dev/termination-log"

// maxTerminationMessageBytes mirrors the kubelet: a container's termination message is cut
// at 4096 bytes, so a report that fits here also fits on a real cluster.
const maxTerminationMessageBytes = 4096

// RefusalError says the Pod asks for something this agent cannot honour. It is permanent:
// the agent fails the Pod with an event instead of running a half-honoured container.
type RefusalError struct{ Msg string }

func (e *RefusalError) Error() string { return e.Msg }

func refusef(format string, a ...any) error { return &RefusalError{Msg: fmt.Sprintf(format, a...)} }

// WaitError says something the Pod references does not exist yet (a Secret, a ConfigMap, a
// key in one). Like the kubelet, the agent leaves the Pod pending and retries.
type WaitError struct {
	Reason string // CreateContainerConfigError or FailedMount, as the kubelet says
	Msg    string
}

func (e *WaitError) Error() string { return e.Msg }

// MountMapping is one path rewrite: a path as the Pod sees it and the host path that stands
// in for it.
type MountMapping struct {
	PodPath  string
	HostPath string
}

// ProcessSpec is everything needed to start a Pod's container as a host process.
type ProcessSpec struct {
	Path string   // host executable
	Argv []string // argv, argv[0] as the Pod wrote it (after rewriting)
	Env  []string // KEY=VALUE, the whole environment of the process
	Dir  string   // working directory on the host

	PodDir                 string // per-pod directory that holds everything below
	LogPath                string // stdout and stderr of the process
	TerminationMessagePath string // host file standing for the container's terminationMessagePath
	FallbackToLogsOnError  bool

	Mounts  []MountMapping // longest PodPath first, as applied
	Ignored []string       // spec fields accepted but not enforced (reported as an event)
}

// Translator turns a Pod into a ProcessSpec: it checks what it can honour, resolves the
// environment, materialises volumes under the per-pod directory and rewrites mount paths.
// Everything it needs from outside is a field, so tests can use a fake clientset.
type Translator struct {
	Client   kubernetes.Interface // Secrets and ConfigMaps
	ImageMap map[string]string    // image name -> host binary; the allow-list
	PVCRoot  string               // PVC claim C lives in PVCRoot/C
	NodeName string
	HostIP   string // reported as status.hostIP and status.podIP

	// AllowHostCommands lets command[0] name a program other than the mapped binary; it is
	// then looked up on the agent's PATH by its base name (so `sh -c ...` runs the host's sh).
	AllowHostCommands bool
	// LookPath finds host programs; nil means exec.LookPath.
	LookPath func(string) (string, error)
	// HostEnv is the environment PATH is taken from when the Pod sets none; nil means os.Environ.
	HostEnv func() []string

	// APIServer (URL) and APIServerCA (PEM) go into the kubeconfig a Pod with a service account
	// token gets; with APIServer empty no token is provided.
	APIServer   string
	APIServerCA []byte
}

// Check reports the first thing in the Pod this agent cannot honour, without touching the
// API or the disk. Prepare calls it too.
func (t *Translator) Check(pod *corev1.Pod) error {
	spec := &pod.Spec
	if len(spec.InitContainers) > 0 {
		return refusef("init containers are not supported by the local node agent (pod has %d)", len(spec.InitContainers))
	}
	if len(spec.EphemeralContainers) > 0 {
		return refusef("ephemeral containers are not supported by the local node agent")
	}
	if len(spec.Containers) != 1 {
		return refusef("the local node agent runs exactly one container per pod; pod has %d", len(spec.Containers))
	}
	if spec.RestartPolicy != "" && spec.RestartPolicy != corev1.RestartPolicyNever {
		return refusef("restartPolicy %s is not supported by the local node agent: only Never (for Jobs: set restartPolicy: Never and let backoffLimit retry)", spec.RestartPolicy)
	}
	if len(spec.ResourceClaims) > 0 {
		return refusef("resourceClaims are not supported by the local node agent")
	}
	c := &spec.Containers[0]
	if _, ok := t.ImageMap[c.Image]; !ok {
		return refusef("image %q is not in the local node agent's --image-map allow-list (mapped: %s)", c.Image, t.mappedImages())
	}
	switch {
	case c.LivenessProbe != nil, c.ReadinessProbe != nil, c.StartupProbe != nil:
		return refusef("container %q: probes are not supported by the local node agent", c.Name)
	case c.Lifecycle != nil:
		return refusef("container %q: lifecycle hooks are not supported by the local node agent", c.Name)
	case c.Stdin || c.StdinOnce:
		return refusef("container %q: stdin is not supported by the local node agent", c.Name)
	case len(c.VolumeDevices) > 0:
		return refusef("container %q: volumeDevices are not supported by the local node agent", c.Name)
	case c.RestartPolicy != nil || len(c.RestartPolicyRules) > 0:
		return refusef("container %q: container restart policies are not supported by the local node agent", c.Name)
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			continue
		}
		switch {
		case e.ValueFrom.FieldRef != nil:
			if _, err := fieldValue(pod, e.ValueFrom.FieldRef.FieldPath, t.HostIP); err != nil {
				return refusef("env %s: %v", e.Name, err)
			}
		case e.ValueFrom.SecretKeyRef != nil, e.ValueFrom.ConfigMapKeyRef != nil:
		default:
			return refusef("env %s: only value, secretKeyRef, configMapKeyRef and fieldRef are supported by the local node agent", e.Name)
		}
	}
	for _, ef := range c.EnvFrom {
		if ef.SecretRef == nil && ef.ConfigMapRef == nil {
			return refusef("envFrom: only secretRef and configMapRef are supported by the local node agent")
		}
	}
	vols := map[string]bool{}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		vols[v.Name] = true
		switch {
		case v.EmptyDir != nil, v.Secret != nil, v.ConfigMap != nil, v.PersistentVolumeClaim != nil:
		case v.HostPath != nil:
			if v.HostPath.Type != nil {
				switch *v.HostPath.Type {
				case corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory,
					corev1.HostPathFileOrCreate, corev1.HostPathFile:
				default:
					return refusef("volume %q: hostPath type %s is not supported by the local node agent", v.Name, *v.HostPath.Type)
				}
			}
		case v.DownwardAPI != nil:
			for _, it := range v.DownwardAPI.Items {
				if it.FieldRef == nil {
					return refusef("volume %q: downwardAPI item %q: only fieldRef is supported by the local node agent", v.Name, it.Path)
				}
				if _, err := downwardValue(pod, it.FieldRef.FieldPath, t.HostIP); err != nil {
					return refusef("volume %q: downwardAPI item %q: %v", v.Name, it.Path, err)
				}
			}
		default:
			return refusef("volume %q: volume type %s is not supported by the local node agent (supported: emptyDir, secret, configMap, hostPath, persistentVolumeClaim, downwardAPI)", v.Name, volumeType(&v.VolumeSource))
		}
	}
	for _, m := range c.VolumeMounts {
		switch {
		case !vols[m.Name]:
			return refusef("volumeMount %s: no volume named %q", m.MountPath, m.Name)
		case m.SubPathExpr != "":
			return refusef("volumeMount %s: subPathExpr is not supported by the local node agent", m.MountPath)
		case !path.IsAbs(m.MountPath) || path.Clean(m.MountPath) == "/":
			return refusef("volumeMount %q: the local node agent can only rewrite absolute mount paths other than /", m.MountPath)
		}
	}
	if p := terminationPath(c); !path.IsAbs(p) || path.Clean(p) == "/" {
		return refusef("terminationMessagePath %q must be an absolute file path", p)
	}
	return nil
}

// Prepare checks the Pod, then lays out podDir (volumes/, bin/, rootfs/, termination-log) and
// returns the process to run. Errors are *RefusalError (permanent) or *WaitError (retry), or
// plain errors for local failures (disk, API).
func (t *Translator) Prepare(ctx context.Context, pod *corev1.Pod, podDir string) (*ProcessSpec, error) {
	if err := t.Check(pod); err != nil {
		return nil, err
	}
	c := &pod.Spec.Containers[0]
	objs := &objectCache{client: t.Client, ns: pod.Namespace}

	envNames, envVals, err := t.resolveEnv(ctx, pod, c, objs)
	if err != nil {
		return nil, err
	}

	for _, d := range []string{"volumes", "bin", "rootfs", "home"} {
		if err := os.MkdirAll(filepath.Join(podDir, d), 0o755); err != nil {
			return nil, err
		}
	}
	volHost := map[string]string{}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		host, err := t.materialise(ctx, pod, v, filepath.Join(podDir, "volumes", v.Name), objs)
		if err != nil {
			return nil, err
		}
		volHost[v.Name] = host
	}

	spec := &ProcessSpec{
		PodDir:                 podDir,
		LogPath:                filepath.Join(podDir, "container.log"),
		TerminationMessagePath: filepath.Join(podDir, "termination-log"),
		FallbackToLogsOnError:  c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError,
	}
	// The kubelet creates the termination message file before the container starts.
	if err := os.WriteFile(spec.TerminationMessagePath, nil, 0o666); err != nil {
		return nil, err
	}
	spec.Mounts = append(spec.Mounts, MountMapping{PodPath: path.Clean(terminationPath(c)), HostPath: spec.TerminationMessagePath})
	for _, m := range c.VolumeMounts {
		host := volHost[m.Name]
		if m.SubPath != "" {
			host = filepath.Join(host, filepath.FromSlash(m.SubPath))
			if !strings.HasPrefix(host, volHost[m.Name]+string(filepath.Separator)) {
				return nil, refusef("volumeMount %s: subPath %q leaves the volume", m.MountPath, m.SubPath)
			}
			if _, err := os.Stat(host); os.IsNotExist(err) {
				// The kubelet creates a missing subPath as a directory.
				if err := os.MkdirAll(host, 0o755); err != nil {
					return nil, err
				}
			}
		}
		spec.Mounts = append(spec.Mounts, MountMapping{PodPath: path.Clean(m.MountPath), HostPath: host})
	}
	kubeconfig, err := t.serviceAccount(ctx, pod, podDir, spec)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(spec.Mounts, func(i, j int) bool { return len(spec.Mounts[i].PodPath) > len(spec.Mounts[j].PodPath) })
	for i := 1; i < len(spec.Mounts); i++ {
		if spec.Mounts[i].PodPath == spec.Mounts[i-1].PodPath {
			return nil, refusef("two mounts at %s", spec.Mounts[i].PodPath)
		}
	}

	// $(VAR) references in command and args are expanded first, then paths rewritten, as a
	// container would see the expanded strings with its mounts in place.
	lookup := func(name string) (string, bool) { v, ok := envVals[name]; return v, ok }
	var cmd, args []string
	for _, s := range c.Command {
		cmd = append(cmd, RewritePaths(Expand(s, lookup), spec.Mounts))
	}
	for _, s := range c.Args {
		args = append(args, RewritePaths(Expand(s, lookup), spec.Mounts))
	}

	bin := t.ImageMap[c.Image]
	// A symlink named like the mapped binary goes first on PATH, so scripts can call it by name.
	if err := os.Symlink(bin, filepath.Join(podDir, "bin", filepath.Base(bin))); err != nil && !os.IsExist(err) {
		return nil, err
	}
	// PATH: the Pod's (rewritten) or the agent's, after a directory holding a symlink named
	// like the mapped binary. The agent's own additions are host paths and never rewritten.
	pathVar, ok := envVals["PATH"]
	if ok {
		pathVar = RewritePaths(pathVar, spec.Mounts)
	} else {
		pathVar = envFrom(t.hostEnv(), "PATH")
	}
	pathVar = filepath.Join(podDir, "bin") + string(os.PathListSeparator) + pathVar

	if len(cmd) == 0 {
		spec.Path = bin
		spec.Argv = append([]string{bin}, args...)
	} else {
		exe, err := t.resolveCommand(c.Image, bin, c.Command[0], cmd[0], spec.Mounts, pathVar)
		if err != nil {
			return nil, err
		}
		spec.Path = exe
		spec.Argv = append(cmd, args...)
	}

	env := map[string]bool{}
	for _, name := range envNames {
		env[name] = true
		v := RewritePaths(envVals[name], spec.Mounts)
		if name == "PATH" {
			v = pathVar
		}
		spec.Env = append(spec.Env, name+"="+v)
	}
	added := [][2]string{{"PATH", pathVar}, {"HOME", filepath.Join(podDir, "home")}, {"HOSTNAME", podHostname(pod)}}
	if kubeconfig != "" {
		added = append(added, [2]string{"KUBECONFIG", kubeconfig})
	}
	if tmp := RewritePaths("/tmp", spec.Mounts); tmp != "/tmp" {
		// Programs find /tmp through TMPDIR (the compiled-in default is not rewritten).
		added = append(added, [2]string{"TMPDIR", tmp})
	}
	for _, kv := range added {
		if !env[kv[0]] {
			spec.Env = append(spec.Env, kv[0]+"="+kv[1])
		}
	}

	switch wd := c.WorkingDir; {
	case wd == "":
		spec.Dir = filepath.Join(podDir, "rootfs")
	case RewritePaths(wd, spec.Mounts) != wd:
		spec.Dir = RewritePaths(wd, spec.Mounts)
	default:
		// A working directory outside every mount stands for the image's filesystem: it
		// becomes a private directory under rootfs/.
		spec.Dir = filepath.Join(podDir, "rootfs", filepath.FromSlash(path.Clean(wd)))
	}
	if err := os.MkdirAll(spec.Dir, 0o755); err != nil {
		return nil, err
	}
	spec.Ignored = append(ignoredFields(pod), spec.Ignored...)
	return spec, nil
}

// serviceAccountDir is where a container finds its service account token.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// serviceAccount stands in for the service account token volume the ServiceAccount admission
// plugin and the kubelet would give the Pod. A host process cannot use the in-cluster
// configuration (client-go reads the token from a compiled-in path and dials the kubernetes
// Service), so the agent asks the TokenRequest API for a token bound to the Pod, writes token,
// ca.crt, namespace and a kubeconfig under PODDIR/serviceaccount, maps the usual mount path
// there, and returns the kubeconfig path for $KUBECONFIG. The process then acts as the Pod's
// ServiceAccount, with exactly its RBAC rights. Returns "" when the Pod gets no token.
func (t *Translator) serviceAccount(ctx context.Context, pod *corev1.Pod, podDir string, spec *ProcessSpec) (string, error) {
	if a := pod.Spec.AutomountServiceAccountToken; a != nil && !*a {
		return "", nil
	}
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		if path.Clean(m.MountPath) == serviceAccountDir {
			return "", nil // the Pod mounts its own token there
		}
	}
	sa := pod.Spec.ServiceAccountName
	switch {
	case sa == "":
		spec.Ignored = append(spec.Ignored, "service account token (no serviceAccountName: the local control plane creates no default ServiceAccount)")
		return "", nil
	case t.APIServer == "":
		spec.Ignored = append(spec.Ignored, "service account token (the agent was given no API server address)")
		return "", nil
	}
	tr, err := t.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To(int64(3600)),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) {
		return "", &WaitError{Reason: "FailedMount", Msg: fmt.Sprintf("service account token: serviceaccount %q not found", sa)}
	}
	if err != nil {
		return "", fmt.Errorf("token for serviceaccount %s: %w", sa, err)
	}
	if tr == nil || tr.Status.Token == "" {
		return "", fmt.Errorf("token for serviceaccount %s: empty TokenRequest status", sa)
	}
	dir := filepath.Join(podDir, "serviceaccount")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: t.APIServer, CertificateAuthorityData: t.APIServerCA, InsecureSkipTLSVerify: len(t.APIServerCA) == 0}
	kc.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: sa, Namespace: pod.Namespace}
	kc.CurrentContext = "local"
	kcBytes, err := clientcmd.Write(*kc)
	if err != nil {
		return "", err
	}
	for name, data := range map[string][]byte{
		"token": []byte(tr.Status.Token), "ca.crt": t.APIServerCA, "namespace": []byte(pod.Namespace), "kubeconfig": kcBytes,
	} {
		if err := writeFile(dir, name, data, 0o600); err != nil {
			return "", err
		}
	}
	spec.Mounts = append(spec.Mounts, MountMapping{PodPath: serviceAccountDir, HostPath: dir})
	return filepath.Join(dir, "kubeconfig"), nil
}

// resolveCommand decides which host program runs for command[0] (orig as written, rewritten
// after path rewriting).
func (t *Translator) resolveCommand(image, bin, orig, rewritten string, mounts []MountMapping, pathVar string) (string, error) {
	if rewritten != orig {
		// A program that lives in a volume (e.g. a script from a ConfigMap).
		return rewritten, nil
	}
	if filepath.Base(orig) == filepath.Base(bin) {
		return bin, nil
	}
	if !t.AllowHostCommands {
		return "", refusef("command %q is not the binary mapped for image %q (%s) and host commands are disabled", orig, image, bin)
	}
	lp := t.LookPath
	if lp == nil {
		lp = func(name string) (string, error) { return lookPathIn(name, pathVar) }
	}
	exe, err := lp(filepath.Base(orig))
	if err != nil {
		return "", refusef("command %q: it is not the binary mapped for image %q (%s) and %q is not on the host PATH", orig, image, bin, filepath.Base(orig))
	}
	return exe, nil
}

func lookPathIn(name, pathVar string) (string, error) {
	for _, dir := range filepath.SplitList(pathVar) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func (t *Translator) hostEnv() []string {
	if t.HostEnv != nil {
		return t.HostEnv()
	}
	return os.Environ()
}

func envFrom(env []string, name string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

func (t *Translator) mappedImages() string {
	if len(t.ImageMap) == 0 {
		return "none"
	}
	names := make([]string, 0, len(t.ImageMap))
	for k := range t.ImageMap {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func terminationPath(c *corev1.Container) string {
	if c.TerminationMessagePath == "" {
		return defaultTerminationMessagePath
	}
	return c.TerminationMessagePath
}

func podHostname(pod *corev1.Pod) string {
	if pod.Spec.Hostname != "" {
		return pod.Spec.Hostname
	}
	return pod.Name
}

// volumeType names the set field of a VolumeSource by its JSON name, for refusal messages.
func volumeType(vs *corev1.VolumeSource) string {
	v := reflect.ValueOf(vs).Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return "unknown"
}

// ignoredFields lists what the Pod asks for that a host process cannot enforce but that is
// harmless to run without; the agent reports it in a Normal event rather than refusing.
func ignoredFields(pod *corev1.Pod) []string {
	spec := &pod.Spec
	c := &spec.Containers[0]
	var out []string
	add := func(cond bool, what string) {
		if cond {
			out = append(out, what)
		}
	}
	add(spec.SecurityContext != nil && !reflect.DeepEqual(*spec.SecurityContext, corev1.PodSecurityContext{}) || c.SecurityContext != nil, "securityContext (runs as the agent's user)")
	add(len(c.Resources.Limits) > 0 || len(c.Resources.Requests) > 0 || spec.Resources != nil, "resources")
	add(len(c.Ports) > 0, "ports (the process shares the host network)")
	add(len(spec.NodeSelector) > 0 || spec.Affinity != nil || len(spec.Tolerations) > 0 && !onlyDefaultTolerations(spec.Tolerations) || len(spec.TopologySpreadConstraints) > 0, "scheduling constraints")
	add(len(spec.ImagePullSecrets) > 0, "imagePullSecrets")
	readOnly := false
	for _, m := range c.VolumeMounts {
		readOnly = readOnly || m.ReadOnly
	}
	add(readOnly, "readOnly volume mounts")
	return out
}

// onlyDefaultTolerations is true for the two tolerations the DefaultTolerationSeconds
// admission plugin adds to every Pod.
func onlyDefaultTolerations(ts []corev1.Toleration) bool {
	for _, t := range ts {
		if t.Key != "node.kubernetes.io/not-ready" && t.Key != "node.kubernetes.io/unreachable" {
			return false
		}
	}
	return true
}

// objectCache fetches each Secret and ConfigMap once per Prepare.
type objectCache struct {
	client     kubernetes.Interface
	ns         string
	secrets    map[string]*corev1.Secret
	configMaps map[string]*corev1.ConfigMap
}

// secret returns (nil, nil) when the Secret does not exist.
func (o *objectCache) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	if s, ok := o.secrets[name]; ok {
		return s, nil
	}
	s, err := o.client.CoreV1().Secrets(o.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if o.secrets == nil {
		o.secrets = map[string]*corev1.Secret{}
	}
	o.secrets[name] = s
	return s, nil
}

// configMap returns (nil, nil) when the ConfigMap does not exist.
func (o *objectCache) configMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	if c, ok := o.configMaps[name]; ok {
		return c, nil
	}
	c, err := o.client.CoreV1().ConfigMaps(o.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		c, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if o.configMaps == nil {
		o.configMaps = map[string]*corev1.ConfigMap{}
	}
	o.configMaps[name] = c
	return c, nil
}

func configMapData(cm *corev1.ConfigMap) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		out[k] = v
	}
	return out
}

// resolveEnv follows the kubelet: envFrom first, then env in order, each value expanded with
// $(VAR) against what is defined so far. It returns the names in first-definition order.
func (t *Translator) resolveEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, objs *objectCache) ([]string, map[string]string, error) {
	var names []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			names = append(names, k)
		}
		vals[k] = v
	}
	optional := func(b *bool) bool { return b != nil && *b }
	wait := func(format string, a ...any) error {
		return &WaitError{Reason: "CreateContainerConfigError", Msg: fmt.Sprintf(format, a...)}
	}

	for _, ef := range c.EnvFrom {
		var data map[string][]byte
		switch {
		case ef.SecretRef != nil:
			s, err := objs.secret(ctx, ef.SecretRef.Name)
			if err != nil {
				return nil, nil, err
			}
			if s == nil {
				if optional(ef.SecretRef.Optional) {
					continue
				}
				return nil, nil, wait("secret %q not found", ef.SecretRef.Name)
			}
			data = s.Data
		case ef.ConfigMapRef != nil:
			cm, err := objs.configMap(ctx, ef.ConfigMapRef.Name)
			if err != nil {
				return nil, nil, err
			}
			if cm == nil {
				if optional(ef.ConfigMapRef.Optional) {
					continue
				}
				return nil, nil, wait("configmap %q not found", ef.ConfigMapRef.Name)
			}
			data = map[string][]byte{}
			for k, v := range cm.Data {
				data[k] = []byte(v)
			}
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(ef.Prefix+k, string(data[k]))
		}
	}

	for _, e := range c.Env {
		lookup := func(name string) (string, bool) { v, ok := vals[name]; return v, ok }
		if e.ValueFrom == nil {
			set(e.Name, Expand(e.Value, lookup))
			continue
		}
		switch src := e.ValueFrom; {
		case src.FieldRef != nil:
			v, err := fieldValue(pod, src.FieldRef.FieldPath, t.HostIP)
			if err != nil {
				return nil, nil, refusef("env %s: %v", e.Name, err)
			}
			set(e.Name, v)
		case src.SecretKeyRef != nil:
			ref := src.SecretKeyRef
			s, err := objs.secret(ctx, ref.Name)
			if err != nil {
				return nil, nil, err
			}
			switch v, ok := secretKey(s, ref.Key); {
			case ok:
				set(e.Name, v)
			case optional(ref.Optional):
			case s == nil:
				return nil, nil, wait("env %s: secret %q not found", e.Name, ref.Name)
			default:
				return nil, nil, wait("env %s: couldn't find key %s in Secret %s/%s", e.Name, ref.Key, pod.Namespace, ref.Name)
			}
		case src.ConfigMapKeyRef != nil:
			ref := src.ConfigMapKeyRef
			cm, err := objs.configMap(ctx, ref.Name)
			if err != nil {
				return nil, nil, err
			}
			var v string
			ok := false
			if cm != nil {
				v, ok = cm.Data[ref.Key]
			}
			switch {
			case ok:
				set(e.Name, v)
			case optional(ref.Optional):
			case cm == nil:
				return nil, nil, wait("env %s: configmap %q not found", e.Name, ref.Name)
			default:
				return nil, nil, wait("env %s: couldn't find key %s in ConfigMap %s/%s", e.Name, ref.Key, pod.Namespace, ref.Name)
			}
		default:
			return nil, nil, refusef("env %s: unsupported valueFrom", e.Name)
		}
	}
	return names, vals, nil
}

func secretKey(s *corev1.Secret, key string) (string, bool) {
	if s == nil {
		return "", false
	}
	if v, ok := s.Data[key]; ok {
		return string(v), true
	}
	v, ok := s.StringData[key]
	return v, ok
}

// fieldValue resolves an env fieldRef the way the kubelet does for the paths that make sense
// for a host process.
func fieldValue(pod *corev1.Pod, fieldPath, hostIP string) (string, error) {
	switch fieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs":
		return hostIP, nil
	}
	if k, ok := subscript(fieldPath, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(fieldPath, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	return "", fmt.Errorf("fieldRef %q is not supported by the local node agent", fieldPath)
}

// downwardValue is fieldValue plus the whole-map forms only a downwardAPI volume allows.
func downwardValue(pod *corev1.Pod, fieldPath, hostIP string) (string, error) {
	switch fieldPath {
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	}
	return fieldValue(pod, fieldPath, hostIP)
}

func subscript(fieldPath, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(fieldPath, prefix+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k + "=" + strconv.Quote(m[k]))
	}
	return b.String()
}

// materialise creates one volume and returns the host path that stands for it.
func (t *Translator) materialise(ctx context.Context, pod *corev1.Pod, v *corev1.Volume, dir string, objs *objectCache) (string, error) {
	mkdir := func() error { return os.MkdirAll(dir, 0o755) }
	fail := func(format string, a ...any) error {
		return &WaitError{Reason: "FailedMount", Msg: fmt.Sprintf("volume %q: ", v.Name) + fmt.Sprintf(format, a...)}
	}
	switch {
	case v.EmptyDir != nil:
		return dir, mkdir()

	case v.Secret != nil:
		s, err := objs.secret(ctx, v.Secret.SecretName)
		if err != nil {
			return "", err
		}
		if s == nil {
			if v.Secret.Optional != nil && *v.Secret.Optional {
				return dir, mkdir()
			}
			return "", fail("secret %q not found", v.Secret.SecretName)
		}
		data := map[string][]byte{}
		for k, val := range s.Data {
			data[k] = val
		}
		for k, val := range s.StringData {
			data[k] = []byte(val)
		}
		if err := writeKeys(dir, data, v.Secret.Items, v.Secret.DefaultMode, v.Secret.Optional); err != nil {
			return "", fail("secret %q: %v", v.Secret.SecretName, err)
		}
		return dir, nil

	case v.ConfigMap != nil:
		cm, err := objs.configMap(ctx, v.ConfigMap.Name)
		if err != nil {
			return "", err
		}
		if cm == nil {
			if v.ConfigMap.Optional != nil && *v.ConfigMap.Optional {
				return dir, mkdir()
			}
			return "", fail("configmap %q not found", v.ConfigMap.Name)
		}
		if err := writeKeys(dir, configMapData(cm), v.ConfigMap.Items, v.ConfigMap.DefaultMode, v.ConfigMap.Optional); err != nil {
			return "", fail("configmap %q: %v", v.ConfigMap.Name, err)
		}
		return dir, nil

	case v.DownwardAPI != nil:
		if err := mkdir(); err != nil {
			return "", err
		}
		for _, it := range v.DownwardAPI.Items {
			val, err := downwardValue(pod, it.FieldRef.FieldPath, t.HostIP)
			if err != nil {
				return "", refusef("volume %q: %v", v.Name, err)
			}
			if err := writeFile(dir, it.Path, []byte(val), fileMode(it.Mode, v.DownwardAPI.DefaultMode)); err != nil {
				return "", err
			}
		}
		return dir, nil

	case v.PersistentVolumeClaim != nil:
		if t.PVCRoot == "" {
			return "", refusef("volume %q: persistentVolumeClaim needs the agent's --pvc-root", v.Name)
		}
		claim := v.PersistentVolumeClaim.ClaimName
		if claim == "" || strings.ContainsAny(claim, "/\\") || claim == "." || claim == ".." {
			return "", refusef("volume %q: bad claim name %q", v.Name, claim)
		}
		host := filepath.Join(t.PVCRoot, claim)
		return host, os.MkdirAll(host, 0o755)

	case v.HostPath != nil:
		p := filepath.Clean(v.HostPath.Path)
		typ := corev1.HostPathUnset
		if v.HostPath.Type != nil {
			typ = *v.HostPath.Type
		}
		st, err := os.Stat(p)
		switch typ {
		case corev1.HostPathDirectoryOrCreate:
			if os.IsNotExist(err) {
				return p, os.MkdirAll(p, 0o755)
			}
		case corev1.HostPathFileOrCreate:
			if os.IsNotExist(err) {
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return "", err
				}
				return p, os.WriteFile(p, nil, 0o644)
			}
		case corev1.HostPathDirectory:
			if err != nil || !st.IsDir() {
				return "", fail("hostPath %s is not a directory", p)
			}
		case corev1.HostPathFile:
			if err != nil || !st.Mode().IsRegular() {
				return "", fail("hostPath %s is not a file", p)
			}
		}
		return p, nil
	}
	return "", refusef("volume %q: volume type %s is not supported by the local node agent", v.Name, volumeType(&v.VolumeSource))
}

// writeKeys writes a Secret's or ConfigMap's keys as files, as the kubelet's volume plugins do.
func writeKeys(dir string, data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, optional *bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if len(items) == 0 {
		for k, v := range data {
			if err := writeFile(dir, k, v, fileMode(nil, defaultMode)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional != nil && *optional {
				continue
			}
			return fmt.Errorf("key %q not found", it.Key)
		}
		if err := writeFile(dir, it.Path, v, fileMode(it.Mode, defaultMode)); err != nil {
			return err
		}
	}
	return nil
}

func fileMode(mode, defaultMode *int32) os.FileMode {
	switch {
	case mode != nil:
		return os.FileMode(*mode) & os.ModePerm
	case defaultMode != nil:
		return os.FileMode(*defaultMode) & os.ModePerm
	}
	return 0o644
}

func writeFile(dir, rel string, data []byte, mode os.FileMode) error {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
		return fmt.Errorf("path %q leaves the volume", rel)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode) // WriteFile's mode is filtered by the umask
}

// Expand replaces $(NAME) with lookup(NAME) when it is defined and turns $$ into $, leaving
// undefined references as written: the Kubernetes rules for env values, command and args.
func Expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// RewritePaths replaces every occurrence of a mount's PodPath that stands as a path of its
// own with the mount's HostPath. An occurrence counts when it is not preceded by a file-name
// character (so /x/data is left alone for a mount at /data, while --dir=/data/a, "/data" in
// a shell script and file:///data/a are rewritten) and is followed by the end, a "/" or a
// character that cannot continue a file name (so /database is left alone). Mounts must be
// ordered longest PodPath first so nested mounts win.
func RewritePaths(s string, mounts []MountMapping) string {
	if len(mounts) == 0 || !strings.Contains(s, "/") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		matched := false
		if s[i] == '/' && (i == 0 || !nameChar(s[i-1])) {
			for _, m := range mounts {
				end := i + len(m.PodPath)
				if strings.HasPrefix(s[i:], m.PodPath) && (end == len(s) || !nameChar(s[end])) {
					b.WriteString(m.HostPath)
					i = end
					matched = true
					break
				}
			}
		}
		if !matched {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

// nameChar reports whether c can be part of a file name component in the paths we rewrite.
func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '~'
}

// IsRefusal reports whether err is a permanent refusal.
func IsRefusal(err error) bool {
	var r *RefusalError
	return errors.As(err, &r)
}

// IsWait reports whether err means "not yet": retry later.
func IsWait(err error) bool {
	var w *WaitError
	return errors.As(err, &w)
}
