package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

const testImage = "example.local/fragile:dev"

// testTranslator maps testImage to a fake "fragile" binary and resolves host commands from a
// fixed table, so tests depend on nothing on the machine.
func testTranslator(t *testing.T, objs ...runtime.Object) (*Translator, string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "fragile")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Translator{
		Client:            fake.NewClientset(objs...),
		ImageMap:          map[string]string{testImage: bin},
		PVCRoot:           filepath.Join(dir, "pvc"),
		NodeName:          "local-node",
		HostIP:            "127.0.0.1",
		AllowHostCommands: true,
		LookPath: func(name string) (string, error) {
			if name == "sh" {
				return "/host/bin/sh", nil
			}
			return "", os.ErrNotExist
		},
		HostEnv: func() []string { return []string{"PATH=/host/bin", "SECRET_OF_THE_AGENT=x"} },
	}, bin
}

func testPod(c corev1.Container, vols ...corev1.Volume) *corev1.Pod {
	if c.Name == "" {
		c.Name = "main"
	}
	if c.Image == "" {
		c.Image = testImage
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "verify-abc", Namespace: "models", UID: "uid-1",
			Labels: map[string]string{"app": "fragile"}, Annotations: map[string]string{"note": "a \"quoted\" one"}},
		Spec: corev1.PodSpec{
			NodeName:      "local-node",
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{c},
			Volumes:       vols,
		},
	}
}

func secret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "models"}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func configMap(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "models"}, Data: data}
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRewritePaths(t *testing.T) {
	mounts := []MountMapping{
		{PodPath: "/var/run/fragile/key", HostPath: "/h/key"},
		{PodPath: "/dev/termination-log", HostPath: "/h/termination-log"},
		{PodPath: "/models/in", HostPath: "/h/in"},
		{PodPath: "/models", HostPath: "/h/models"},
	}
	for _, tc := range []struct{ in, want string }{
		{"/var/run/fragile/key", "/h/key"},
		{"--key=/var/run/fragile/key/private.pem", "--key=/h/key/private.pem"},
		{"/models/in/mnist.onnx", "/h/in/mnist.onnx"}, // nested mount wins
		{"/models/out/x.onnx", "/h/models/out/x.onnx"},
		{"file:///models/x.onnx", "file:///h/models/x.onnx"},
		{"echo done > /dev/termination-log", "echo done > /h/termination-log"},
		{`cat "/models/a" '/models/b'`, `cat "/h/models/a" '/h/models/b'`},
		{"/a:/models:/b", "/a:/h/models:/b"},
		{"/modelsx /models.bak /models-old /models_2", "/modelsx /models.bak /models-old /models_2"},
		{"/opt/models /x//models", "/opt/models /x//h/models"},
		{"/dev/termination-log.tmp", "/dev/termination-log.tmp"},
		{"no paths here", "no paths here"},
		{"", ""},
	} {
		if got := RewritePaths(tc.in, mounts); got != tc.want {
			t.Errorf("RewritePaths(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, tc := range []struct{ in, want string }{
		{"$(A)-$(B)", "1-two"},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"cost $5", "cost $5"},
		{"$(A", "$(A"},
		{"trailing $", "trailing $"},
		{"$$$(A)", "$1"},
	} {
		if got := Expand(tc.in, lookup); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPrepareEnv(t *testing.T) {
	opt := true
	tr, _ := testTranslator(t,
		secret("creds", map[string]string{"token": "s3cret", "dir": "/models/in"}),
		configMap("settings", map[string]string{"level": "debug", "mode": "strict"}),
	)
	pod := testPod(corev1.Container{
		Args: []string{"verify", "--level=$(LEVEL)", "--who=$(POD_NAME)"},
		EnvFrom: []corev1.EnvFromSource{
			{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: &opt}},
		},
		Env: []corev1.EnvVar{
			{Name: "PLAIN", Value: "v"},
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "token"}}},
			{Name: "LEVEL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "level"}}},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "COMBINED", Value: "$(PLAIN)/$(POD_NAMESPACE)/$(LATER)"},
			{Name: "MAYBE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "nope", Optional: &opt}}},
			{Name: "MODEL_DIR", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "dir"}}},
			{Name: "LATER", Value: "x"},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: "in", MountPath: "/models/in"}},
	}, corev1.Volume{Name: "in", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	podDir := t.TempDir()
	spec, err := tr.Prepare(context.Background(), pod, podDir)
	if err != nil {
		t.Fatal(err)
	}
	env := envMap(spec.Env)
	want := map[string]string{
		"CFG_level": "debug", "CFG_mode": "strict",
		"PLAIN": "v", "TOKEN": "s3cret", "LEVEL": "debug",
		"POD_NAME": "verify-abc", "POD_NAMESPACE": "models", "APP": "fragile", "NODE": "local-node",
		"COMBINED":  "v/models/$(LATER)", // only variables defined earlier expand
		"MODEL_DIR": filepath.Join(podDir, "volumes", "in"),
		"LATER":     "x",
		"HOME":      filepath.Join(podDir, "home"),
		"HOSTNAME":  "verify-abc",
		"PATH":      filepath.Join(podDir, "bin") + ":/host/bin",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"MAYBE", "SECRET_OF_THE_AGENT"} {
		if _, ok := env[k]; ok {
			t.Errorf("env %s should not be set", k)
		}
	}
	if len(env) != len(want) {
		t.Errorf("env has %d variables, want %d: %v", len(env), len(want), spec.Env)
	}
	if wantArgs := []string{tr.ImageMap[testImage], "verify", "--level=debug", "--who=verify-abc"}; !slices.Equal(spec.Argv, wantArgs) {
		t.Errorf("argv = %q, want %q", spec.Argv, wantArgs)
	}
}

func TestPrepareVolumesAndPaths(t *testing.T) {
	mode := int32(0o600)
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	hostDir := filepath.Join(t.TempDir(), "host", "cache")
	tr, bin := testTranslator(t,
		secret("key", map[string]string{"private.pem": "PRIVATE", "public.pem": "PUBLIC"}),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "models"},
			Data: map[string]string{"a.yaml": "a: 1"}, BinaryData: map[string][]byte{"blob": {0, 1, 2}}},
	)
	pod := testPod(corev1.Container{
		Command:                []string{"/usr/local/bin/fragile"},
		Args:                   []string{"verify", "--key=/var/run/fragile/key/private.pem", "--model=file:///models/mnist.onnx", "--cfg=/etc/cfg/a.yaml", "--report=/report/out.json"},
		WorkingDir:             "/models/work",
		TerminationMessagePath: "/tmp/msg",
		Env:                    []corev1.EnvVar{{Name: "CACHE", Value: "/cache/x"}, {Name: "INFO", Value: "/etc/podinfo/labels"}},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "key", MountPath: "/var/run/fragile/key", ReadOnly: true},
			{Name: "model", MountPath: "/models"},
			{Name: "cfg", MountPath: "/etc/cfg"},
			{Name: "scratch", MountPath: "/report"},
			{Name: "cache", MountPath: "/cache"},
			{Name: "info", MountPath: "/etc/podinfo"},
			{Name: "model", MountPath: "/models-sub/", SubPath: "sub/dir"},
		},
	},
		corev1.Volume{Name: "key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "key", Items: []corev1.KeyToPath{{Key: "private.pem", Path: "private.pem", Mode: &mode}}}}},
		corev1.Volume{Name: "model", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "models-pvc"}}},
		corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir, Type: &dirOrCreate}}},
		corev1.Volume{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
		}}}},
	)
	podDir := t.TempDir()
	spec, err := tr.Prepare(context.Background(), pod, podDir)
	if err != nil {
		t.Fatal(err)
	}
	vol := func(name string) string { return filepath.Join(podDir, "volumes", name) }
	pvc := filepath.Join(tr.PVCRoot, "models-pvc")

	if spec.Path != bin {
		t.Errorf("path = %s, want the mapped binary %s", spec.Path, bin)
	}
	wantArgv := []string{"/usr/local/bin/fragile", "verify",
		"--key=" + vol("key") + "/private.pem",
		"--model=file://" + pvc + "/mnist.onnx",
		"--cfg=" + vol("cfg") + "/a.yaml",
		"--report=" + vol("scratch") + "/out.json"}
	if !slices.Equal(spec.Argv, wantArgv) {
		t.Errorf("argv:\n got %q\nwant %q", spec.Argv, wantArgv)
	}
	if want := filepath.Join(pvc, "work"); spec.Dir != want {
		t.Errorf("dir = %s, want %s", spec.Dir, want)
	}
	if st, err := os.Stat(spec.Dir); err != nil || !st.IsDir() {
		t.Errorf("working dir not created: %v", err)
	}
	env := envMap(spec.Env)
	if env["CACHE"] != hostDir+"/x" || env["INFO"] != vol("info")+"/labels" {
		t.Errorf("env not rewritten: CACHE=%s INFO=%s", env["CACHE"], env["INFO"])
	}

	// Files as the kubelet's volume plugins lay them out.
	if got := readFile(t, filepath.Join(vol("key"), "private.pem")); got != "PRIVATE" {
		t.Errorf("secret file = %q", got)
	}
	if st, _ := os.Stat(filepath.Join(vol("key"), "private.pem")); st.Mode().Perm() != 0o600 {
		t.Errorf("secret item mode = %v, want 0600", st.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(vol("key"), "public.pem")); !os.IsNotExist(err) {
		t.Errorf("secret key not in items was written")
	}
	if got := readFile(t, filepath.Join(vol("cfg"), "a.yaml")); got != "a: 1" {
		t.Errorf("configmap file = %q", got)
	}
	if got := readFile(t, filepath.Join(vol("cfg"), "blob")); got != "\x00\x01\x02" {
		t.Errorf("configmap binaryData = %q", got)
	}
	if got := readFile(t, filepath.Join(vol("info"), "labels")); got != `app="fragile"` {
		t.Errorf("downwardAPI labels = %q", got)
	}
	if got := readFile(t, filepath.Join(vol("info"), "name")); got != "verify-abc" {
		t.Errorf("downwardAPI name = %q", got)
	}
	for _, d := range []string{vol("scratch"), hostDir, pvc, filepath.Join(pvc, "sub", "dir")} {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			t.Errorf("%s not created: %v", d, err)
		}
	}
	// The custom terminationMessagePath maps to the per-pod file, which exists and is empty.
	if spec.TerminationMessagePath != filepath.Join(podDir, "termination-log") || readFile(t, spec.TerminationMessagePath) != "" {
		t.Errorf("termination message file %s", spec.TerminationMessagePath)
	}
	if !slices.ContainsFunc(spec.Mounts, func(m MountMapping) bool {
		return m.PodPath == "/tmp/msg" && m.HostPath == spec.TerminationMessagePath
	}) {
		t.Errorf("terminationMessagePath not mapped: %v", spec.Mounts)
	}
	if !slices.ContainsFunc(spec.Mounts, func(m MountMapping) bool {
		return m.PodPath == "/models-sub" && m.HostPath == filepath.Join(pvc, "sub", "dir")
	}) {
		t.Errorf("subPath mount not mapped: %v", spec.Mounts)
	}
	if !slices.Contains(spec.Ignored, "readOnly volume mounts") {
		t.Errorf("ignored = %v, want readOnly volume mounts reported", spec.Ignored)
	}
}

func TestPrepareCommandResolution(t *testing.T) {
	tr, bin := testTranslator(t, configMap("scripts", map[string]string{"run.sh": "#!/bin/sh\necho hi\n"}))
	scripts := corev1.Volume{Name: "scripts", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "scripts"}}}}
	for _, tc := range []struct {
		name     string
		c        corev1.Container
		wantPath string // "" for refusal; "VOL" for the script in the volume
	}{
		{"no command runs the mapped binary", corev1.Container{Args: []string{"keygen"}}, bin},
		{"command with the mapped binary's name", corev1.Container{Command: []string{"fragile", "verify"}}, bin},
		{"absolute in-image path of the mapped binary", corev1.Container{Command: []string{"/fragile"}}, bin},
		{"host shell", corev1.Container{Command: []string{"/bin/sh", "-c", "echo done > /dev/termination-log"}}, "/host/bin/sh"},
		{"script from a volume", corev1.Container{Command: []string{"/scripts/run.sh"}}, "VOL"},
		{"unknown program", corev1.Container{Command: []string{"python3", "x.py"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			c.VolumeMounts = []corev1.VolumeMount{{Name: "scripts", MountPath: "/scripts"}}
			podDir := t.TempDir()
			spec, err := tr.Prepare(context.Background(), testPod(c, scripts), podDir)
			if tc.wantPath == "" {
				if !IsRefusal(err) {
					t.Fatalf("want a refusal, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.wantPath
			if want == "VOL" {
				want = filepath.Join(podDir, "volumes", "scripts", "run.sh")
			}
			if spec.Path != want {
				t.Errorf("path = %s, want %s", spec.Path, want)
			}
			if strings.Contains(strings.Join(spec.Argv, " "), "/dev/termination-log") {
				t.Errorf("termination path not rewritten: %q", spec.Argv)
			}
		})
	}
	tr.AllowHostCommands = false
	_, err := tr.Prepare(context.Background(), testPod(corev1.Container{Command: []string{"sh", "-c", "true"}}), t.TempDir())
	if !IsRefusal(err) {
		t.Errorf("host command with --allow-host-commands=false: want a refusal, got %v", err)
	}
}

func TestCheckRefusals(t *testing.T) {
	tr, _ := testTranslator(t)
	onFailure := corev1.RestartPolicyOnFailure
	always := corev1.ContainerRestartPolicyAlways
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.Pod)
		want   string // part of the message
	}{
		{"unmapped image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx" }, `image "nginx" is not in the local node agent's --image-map`},
		{"two containers", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: testImage})
		}, "exactly one container"},
		{"init containers", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: testImage}}
		}, "init containers"},
		{"sidecar", func(p *corev1.Pod) { p.Spec.Containers[0].RestartPolicy = &always }, "restart policies"},
		{"restartPolicy OnFailure", func(p *corev1.Pod) { p.Spec.RestartPolicy = onFailure }, "restartPolicy OnFailure"},
		{"probe", func(p *corev1.Pod) { p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{} }, "probes"},
		{"lifecycle", func(p *corev1.Pod) { p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{} }, "lifecycle"},
		{"projected volume", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}}}
		}, `volume "token": volume type projected is not supported`},
		{"nfs volume", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "n", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{}}}}
		}, "volume type nfs"},
		{"subPathExpr", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "e", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "e", MountPath: "/e", SubPathExpr: "$(POD)"}}
		}, "subPathExpr"},
		{"mount at /", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "e", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "e", MountPath: "/"}}
		}, "absolute mount paths other than /"},
		{"resourceFieldRef", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "CPU", ValueFrom: &corev1.EnvVarSource{
				ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}}}
		}, "env CPU"},
		{"unknown fieldRef", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.phase"}}}}
		}, `fieldRef "status.phase"`},
		{"downwardAPI resourceFieldRef", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
				Items: []corev1.DownwardAPIVolumeFile{{Path: "cpu", ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}}}}}}
		}, "only fieldRef"},
		{"hostPath socket", func(p *corev1.Pod) {
			sock := corev1.HostPathSocket
			p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/run/x.sock", Type: &sock}}}}
		}, "hostPath type Socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod(corev1.Container{Command: []string{"fragile"}})
			tc.mutate(pod)
			podDir := filepath.Join(t.TempDir(), "pod")
			_, err := tr.Prepare(context.Background(), pod, podDir)
			if !IsRefusal(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a refusal containing %q, got %v", tc.want, err)
			}
			if _, err := os.Stat(podDir); !os.IsNotExist(err) {
				t.Errorf("a refused pod left a directory behind")
			}
		})
	}
}

func TestPrepareWaitsForMissingObjects(t *testing.T) {
	tr, _ := testTranslator(t, secret("present", map[string]string{"a": "1"}))
	ref := func(name, key string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}
	}
	for _, tc := range []struct {
		name       string
		pod        *corev1.Pod
		wantReason string
	}{
		{"missing secret for env", testPod(corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: ref("absent", "a")}}}), "CreateContainerConfigError"},
		{"missing key for env", testPod(corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: ref("present", "b")}}}), "CreateContainerConfigError"},
		{"missing configmap for env", testPod(corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
			ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Key: "k"}}}}}), "CreateContainerConfigError"},
		{"missing secret volume", testPod(corev1.Container{},
			corev1.Volume{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "absent"}}}), "FailedMount"},
		{"missing key in secret volume items", testPod(corev1.Container{},
			corev1.Volume{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "present",
				Items: []corev1.KeyToPath{{Key: "b", Path: "b"}}}}}), "FailedMount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tr.Prepare(context.Background(), tc.pod, t.TempDir())
			var w *WaitError
			if !IsWait(err) {
				t.Fatalf("want a WaitError, got %v", err)
			}
			w = err.(*WaitError)
			if w.Reason != tc.wantReason {
				t.Errorf("reason = %s, want %s (%s)", w.Reason, tc.wantReason, w.Msg)
			}
		})
	}
	// Optional references are not waited for.
	opt := true
	pod := testPod(corev1.Container{}, corev1.Volume{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "absent", Optional: &opt}}})
	if _, err := tr.Prepare(context.Background(), pod, t.TempDir()); err != nil {
		t.Errorf("optional secret volume: %v", err)
	}
}

func TestPrepareServiceAccountKubeconfig(t *testing.T) {
	tr, _ := testTranslator(t)
	tr.APIServer, tr.APIServerCA = "https://127.0.0.1:6443", []byte("CA PEM")
	var requests []*authenticationv1.TokenRequest
	tr.Client.(*fake.Clientset).PrependReactor("create", "serviceaccounts", func(action k8stesting.Action) (bool, runtime.Object, error) {
		ca := action.(k8stesting.CreateAction)
		if ca.GetSubresource() != "token" {
			return false, nil, nil
		}
		if name := ca.(k8stesting.CreateActionImpl).Name; name != "trainer" {
			return true, nil, apierrors.NewNotFound(corev1.Resource("serviceaccounts"), name)
		}
		req := ca.GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		requests = append(requests, req)
		req.Status.Token = "bound-token"
		return true, req, nil
	})
	tmpVol := corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	newPod := func(sa string, automount *bool) *corev1.Pod {
		p := testPod(corev1.Container{
			Args:         []string{"watermark", "--token-file=/var/run/secrets/kubernetes.io/serviceaccount/token", "--scratch=/tmp/x"},
			VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
		}, tmpVol)
		p.Spec.ServiceAccountName, p.Spec.AutomountServiceAccountToken = sa, automount
		return p
	}

	// podDir lives under /tmp (t.TempDir), like the local cluster's default work directory, so
	// this also checks that the agent's own paths (PATH, HOME, KUBECONFIG) are not rewritten by
	// the Pod's /tmp mount.
	podDir := t.TempDir()
	spec, err := tr.Prepare(context.Background(), newPod("trainer", nil), podDir)
	if err != nil {
		t.Fatal(err)
	}
	saDir := filepath.Join(podDir, "serviceaccount")
	env := envMap(spec.Env)
	for k, want := range map[string]string{
		"KUBECONFIG": filepath.Join(saDir, "kubeconfig"),
		"TMPDIR":     filepath.Join(podDir, "volumes", "tmp"),
		"HOME":       filepath.Join(podDir, "home"),
		"PATH":       filepath.Join(podDir, "bin") + ":/host/bin",
	} {
		if env[k] != want {
			t.Errorf("env %s = %q, want %q", k, env[k], want)
		}
	}
	if want := "--token-file=" + saDir + "/token"; spec.Argv[2] != want {
		t.Errorf("argv[2] = %q, want %q", spec.Argv[2], want)
	}
	if want := "--scratch=" + filepath.Join(podDir, "volumes", "tmp") + "/x"; spec.Argv[3] != want {
		t.Errorf("argv[3] = %q, want %q", spec.Argv[3], want)
	}
	if got := readFile(t, filepath.Join(saDir, "token")); got != "bound-token" {
		t.Errorf("token file = %q", got)
	}
	kc, err := clientcmd.LoadFromFile(filepath.Join(saDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
	ns, _, _ := clientcmd.NewDefaultClientConfig(*kc, nil).Namespace()
	if cc.Host != tr.APIServer || cc.BearerToken != "bound-token" || string(cc.CAData) != "CA PEM" || ns != "models" {
		t.Errorf("kubeconfig: host %s token %q ca %q namespace %s", cc.Host, cc.BearerToken, cc.CAData, ns)
	}
	if len(requests) != 1 || requests[0].Spec.BoundObjectRef == nil || requests[0].Spec.BoundObjectRef.UID != "uid-1" {
		t.Errorf("token requests: %+v", requests)
	}

	// No token when the Pod opts out, and said so when it names no ServiceAccount.
	spec, err = tr.Prepare(context.Background(), newPod("trainer", ptr.To(false)), t.TempDir())
	if err != nil || envMap(spec.Env)["KUBECONFIG"] != "" {
		t.Errorf("automount false: err %v, KUBECONFIG %q", err, envMap(spec.Env)["KUBECONFIG"])
	}
	spec, err = tr.Prepare(context.Background(), newPod("", nil), t.TempDir())
	if err != nil || !slices.ContainsFunc(spec.Ignored, func(s string) bool { return strings.HasPrefix(s, "service account token") }) {
		t.Errorf("no serviceAccountName: err %v, ignored %v", err, spec.Ignored)
	}
	// A ServiceAccount that does not exist yet is waited for.
	if _, err = tr.Prepare(context.Background(), newPod("absent", nil), t.TempDir()); !IsWait(err) {
		t.Errorf("missing ServiceAccount: want a WaitError, got %v", err)
	}
}
