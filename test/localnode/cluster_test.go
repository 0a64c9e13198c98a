package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// TestLocalClusterRunsJob is the integration test: hack/local-cluster.sh starts etcd,
// kube-apiserver, kube-controller-manager and this agent; the real Job controller creates Pods,
// the agent runs them, the Jobs turn Complete with the termination message in the Pod status,
// the garbage collector removes the Pods of a deleted Job, and stop leaves no process or port.
//
// It needs the binaries of `WITH_CONTROLLER_MANAGER=1 hack/setup-envtest.sh` in
// KUBEBUILDER_ASSETS and is skipped without them (and with -short). The cluster is started with
// LOCAL_CLUSTER_OWNER_PID set to this process, so a test killed by -timeout leaks nothing.
func TestLocalClusterRunsJob(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the local cluster")
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(assets, b)); assets == "" || err != nil {
			t.Skipf("KUBEBUILDER_ASSETS (%q) has no %s: run eval \"$(WITH_CONTROLLER_MANAGER=1 hack/setup-envtest.sh)\"", assets, b)
		}
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	script, err := filepath.Abs("../../hack/local-cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const image = "example.local/shell:1"

	// Build the agent before anything runs: on a loaded machine with a cold build cache this can
	// take minutes, and the cluster must not be started without time left to stop it.
	agentBin := filepath.Join(t.TempDir(), "localnode") // start wipes the cluster directory
	build := exec.Command("go", "build", "-o", agentBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if deadline, ok := t.Deadline(); ok && time.Until(deadline) < 6*time.Minute {
		t.Fatalf("only %s left before the test deadline, not enough to start and stop a cluster; run with -timeout 20m", time.Until(deadline).Round(time.Second))
	}
	cluster := func(args ...string) (string, error) {
		cmd := exec.Command("bash", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), "LOCAL_CLUSTER_DIR="+dir, "LOCAL_NODE_IMAGE_MAP="+image+"="+sh, "LOCAL_NODE_BIN="+agentBin,
			// If this test binary is killed (go test -timeout), the cluster stops by itself.
			"LOCAL_CLUSTER_OWNER_PID="+strconv.Itoa(os.Getpid()))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		t.Logf("local-cluster.sh %s:\n%s%s", strings.Join(args, " "), stderr.String(), out)
		return string(out), err
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_, _ = cluster("stop")
		}
	})
	dumpLogs := func() {
		for _, c := range []string{"localnode", "controller-manager"} {
			b, _ := os.ReadFile(filepath.Join(dir, c+".log"))
			lines := strings.Split(string(b), "\n")
			t.Logf("last lines of %s.log:\n%s", c, strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	}

	start := time.Now()
	out, err := cluster("start")
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Logf("started in %s", time.Since(start).Round(time.Millisecond))
	if want := "export KUBECONFIG=" + filepath.Join(dir, "kubeconfig"); strings.TrimSpace(out) != want {
		t.Errorf("start printed %q, want %q", out, want)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if _, err := client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "word"},
		StringData: map[string]string{"w": "from-a-secret"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	job := func(name, script string, vols []corev1.Volume, mounts []corev1.VolumeMount) *batchv1.Job {
		return &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: batchv1.JobSpec{
				BackoffLimit: ptr.To(int32(0)),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{
						Name: "main", Image: image, Command: []string{"sh", "-c", script}, VolumeMounts: mounts,
					}},
					Volumes: vols,
				}},
			},
		}
	}
	jobs := map[string]string{ // Job name -> expected termination message
		"echo":   "done\n",
		"secret": "from-a-secret",
	}
	for _, j := range []*batchv1.Job{
		job("echo", "echo done > /dev/termination-log", nil, nil),
		job("secret", "cat /etc/word/w > /dev/termination-log",
			[]corev1.Volume{{Name: "word", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "word"}}}},
			[]corev1.VolumeMount{{Name: "word", MountPath: "/etc/word"}}),
	} {
		if _, err := client.BatchV1().Jobs("default").Create(ctx, j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	for name, want := range jobs {
		deadline := time.Now().Add(90 * time.Second)
		for !jobComplete(ctx, t, client, name) {
			if time.Now().After(deadline) {
				dumpLogs()
				t.Fatalf("job %s not Complete after 90s", name)
			}
			time.Sleep(250 * time.Millisecond)
		}
		pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + name})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("job %s pods: %v %v", name, len(pods.Items), err)
		}
		p := pods.Items[0]
		if p.Spec.NodeName != "local-node" || p.Status.Phase != corev1.PodSucceeded || p.Status.StartTime == nil ||
			len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Terminated == nil {
			t.Fatalf("job %s pod: node %q status %+v", name, p.Spec.NodeName, p.Status)
		}
		term := p.Status.ContainerStatuses[0].State.Terminated
		if term.ExitCode != 0 || term.Message != want || term.Reason != "Completed" {
			t.Errorf("job %s: terminated %+v, want message %q", name, term, want)
		}
	}
	t.Logf("jobs complete after %s", time.Since(start).Round(time.Millisecond))

	// Deleting a Job lets the garbage collector delete its Pod; the agent cleans the pod directory.
	bg := metav1.DeletePropagationBackground
	if err := client.BatchV1().Jobs("default").Delete(ctx, "echo", metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "job-name=echo"})
		dirs, _ := filepath.Glob(filepath.Join(dir, "node", "pods", "default_echo-*"))
		if err == nil && len(pods.Items) == 0 && len(dirs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			dumpLogs()
			t.Fatalf("pod of deleted job still there: %d pods, dirs %v, %v", len(pods.Items), dirs, err)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// stop: every recorded process gone (the watchdog too), every port free.
	var pids []int
	for _, c := range []string{"etcd", "apiserver", "controller-manager", "localnode", "watchdog"} {
		b, err := os.ReadFile(filepath.Join(dir, c+".pid"))
		if err != nil {
			t.Fatalf("%s.pid: %v", c, err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		pids = append(pids, pid)
	}
	ports := readPorts(t, filepath.Join(dir, "ports.env"))
	stopped = true
	if _, err := cluster("stop"); err != nil {
		t.Errorf("stop: %v", err)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("pid %d still runs after stop", pid)
		}
	}
	for name, port := range ports {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second); err == nil {
			c.Close()
			t.Errorf("%s port %s still listening after stop", name, port)
		}
	}
	if out, err := cluster("status"); err == nil || strings.Contains(out, "running") {
		t.Errorf("status after stop: %v\n%s", err, out)
	}
}

func jobComplete(ctx context.Context, t *testing.T, c kubernetes.Interface, name string) bool {
	j, err := c.BatchV1().Jobs("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) {
			t.Logf("get job %s: %v", name, err)
		}
		return false
	}
	for _, cond := range j.Status.Conditions {
		if cond.Status == corev1.ConditionTrue {
			switch cond.Type {
			case batchv1.JobComplete:
				return true
			case batchv1.JobFailed:
				t.Fatalf("job %s failed: %s", name, cond.Message)
			}
		}
	}
	return false
}

func readPorts(t *testing.T, p string) map[string]string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ports := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok && strings.HasSuffix(k, "_PORT") {
			ports[k] = v
		}
	}
	if len(ports) != 4 {
		t.Fatalf("ports.env has %v", ports)
	}
	return ports
}
