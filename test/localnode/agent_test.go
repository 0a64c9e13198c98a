package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

const shellImage = "example.local/shell:1"

// newTestAgent returns an agent on a fake clientset holding objs, whose binding subresource
// sets spec.nodeName as the API server does, and a recorder whose events tests can read.
func newTestAgent(t *testing.T, runner Runner, objs ...runtime.Object) (*Agent, *fake.Clientset, *record.FakeRecorder) {
	t.Helper()
	sh, err := lookPathIn("sh", os.Getenv("PATH"))
	if err != nil {
		t.Skip("no sh on PATH")
	}
	client := fake.NewClientset(objs...)
	client.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := action.(k8stesting.CreateAction).GetObject().(*corev1.Binding)
		gvr := corev1.SchemeGroupVersion.WithResource("pods")
		obj, err := client.Tracker().Get(gvr, b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*corev1.Pod).DeepCopy()
		pod.Spec.NodeName = b.Target.Name
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue})
		return true, nil, client.Tracker().Update(gvr, pod, b.Namespace)
	})
	rec := record.NewFakeRecorder(100)
	root := t.TempDir()
	a := &Agent{
		Client: client,
		Translator: &Translator{
			Client:            client,
			ImageMap:          map[string]string{shellImage: sh},
			PVCRoot:           filepath.Join(root, "pvc"),
			NodeName:          "local-node",
			HostIP:            "127.0.0.1",
			AllowHostCommands: true,
		},
		Runner:    runner,
		Recorder:  rec,
		NodeName:  "local-node",
		RootDir:   root,
		MaxGrace:  2 * time.Second,
		RetryWait: 100 * time.Millisecond,
		Log:       log.New(io.Discard, "", 0),
	}
	if testing.Verbose() {
		a.Log = log.New(os.Stderr, "localnode: ", log.Lmicroseconds)
	}
	return a, client, rec
}

// runAgent runs a until the returned stop function is called; stop waits for Run to return.
func runAgent(t *testing.T, a *Agent) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("agent did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

func shellPod(name, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{
			SchedulerName: corev1.DefaultSchedulerName,
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "main", Image: shellImage, Command: []string{"sh", "-c", script},
				TerminationMessagePath: "/dev/termination-log",
			}},
		},
	}
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last seen: %s", what, last)
}

func getPod(t *testing.T, c *fake.Clientset, name string) *corev1.Pod {
	t.Helper()
	p, err := c.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func waitPhase(t *testing.T, c *fake.Clientset, name string, phase corev1.PodPhase) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	waitFor(t, fmt.Sprintf("pod %s %s", name, phase), func() (bool, string) {
		pod = getPod(t, c, name)
		return pod.Status.Phase == phase, fmt.Sprintf("%s %+v", pod.Status.Phase, pod.Status.ContainerStatuses)
	})
	return pod
}

func terminated(t *testing.T, pod *corev1.Pod) *corev1.ContainerStateTerminated {
	t.Helper()
	if len(pod.Status.ContainerStatuses) != 1 || pod.Status.ContainerStatuses[0].State.Terminated == nil {
		t.Fatalf("pod %s: no terminated container status: %+v", pod.Name, pod.Status.ContainerStatuses)
	}
	return pod.Status.ContainerStatuses[0].State.Terminated
}

func pidOf(t *testing.T, pod *corev1.Pod) int {
	t.Helper()
	id := pod.Status.ContainerStatuses[0].ContainerID
	pid, err := strconv.Atoi(strings.TrimPrefix(id, "localnode://"))
	if err != nil {
		t.Fatalf("containerID %q", id)
	}
	return pid
}

func processGone(pid int) bool { return syscall.Kill(pid, 0) != nil }

func events(rec *record.FakeRecorder) string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return strings.Join(out, "\n")
		}
	}
}

func TestAgentRunsPodsToCompletion(t *testing.T) {
	ok := shellPod("ok", "echo hello from $(POD); printf done > /dev/termination-log")
	ok.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	failing := shellPod("failing", "echo boom >&2; exit 3")
	failing.Spec.Containers[0].TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	refused := shellPod("refused", "true")
	refused.Spec.Containers[0].Image = "nginx"
	otherNode := shellPod("other-node", "true")
	otherNode.Spec.NodeName = "somewhere-else"

	a, client, rec := newTestAgent(t, execRunner{}, ok, failing, refused, otherNode)
	stop := runAgent(t, a)

	pod := waitPhase(t, client, "ok", corev1.PodSucceeded)
	term := terminated(t, pod)
	if pod.Spec.NodeName != "local-node" || term.ExitCode != 0 || term.Message != "done" || term.Reason != "Completed" || pod.Status.StartTime == nil {
		t.Errorf("ok: node %q, terminated %+v, startTime %v", pod.Spec.NodeName, term, pod.Status.StartTime)
	}
	if log := readFile(t, filepath.Join(a.podDir(pod), "container.log")); log != "hello from ok\n" {
		t.Errorf("ok: container.log = %q", log)
	}

	pod = waitPhase(t, client, "failing", corev1.PodFailed)
	if term := terminated(t, pod); term.ExitCode != 3 || term.Message != "boom\n" || term.Reason != "Error" {
		t.Errorf("failing: terminated %+v (want exit 3, message from the log tail)", term)
	}

	pod = waitPhase(t, client, "refused", corev1.PodFailed)
	if pod.Status.Reason != ReasonRefused || !strings.Contains(pod.Status.Message, `image "nginx"`) {
		t.Errorf("refused: reason %q message %q", pod.Status.Reason, pod.Status.Message)
	}
	if term := terminated(t, pod); term.Reason != ReasonRefused {
		t.Errorf("refused: terminated %+v", term)
	}

	if p := getPod(t, client, "other-node"); p.Status.Phase != "" {
		t.Errorf("a pod of another node was touched: %+v", p.Status)
	}
	node, err := client.CoreV1().Nodes().Get(context.Background(), "local-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !nodeReady(node) || node.Status.Capacity.Cpu().Value() < 1 || node.Status.Capacity.Pods().Value() != 110 {
		t.Errorf("node: conditions %+v capacity %v", node.Status.Conditions, node.Status.Capacity)
	}

	stop()
	ev := events(rec)
	for _, want := range []string{
		"Normal Scheduled Successfully assigned default/ok to local-node",
		"Normal Started Started local process",
		`Warning UnsupportedByLocalNode image "nginx" is not in the local node agent's --image-map allow-list`,
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("no event %q in:\n%s", want, ev)
		}
	}
	node, _ = client.CoreV1().Nodes().Get(context.Background(), "local-node", metav1.GetOptions{})
	if nodeReady(node) {
		t.Errorf("node still Ready after the agent stopped")
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func TestAgentStopsProcessesOfDeletedPods(t *testing.T) {
	graceful := shellPod("graceful", "sleep 60")
	abrupt := shellPod("abrupt", "sleep 60")
	survivor := shellPod("survivor", "sleep 60")
	a, client, _ := newTestAgent(t, execRunner{}, graceful, abrupt, survivor)
	stop := runAgent(t, a)
	ctx := context.Background()

	// On a real API server, deleting a running Pod only sets deletionTimestamp; the node must
	// stop the process and confirm with a grace-period-0 delete.
	pod := waitPhase(t, client, "graceful", corev1.PodRunning)
	pid, dir := pidOf(t, pod), a.podDir(pod)
	now := metav1.Now()
	pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds = &now, ptr.To(int64(30))
	if err := client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("pods"), pod, "default"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "graceful pod deleted, process gone, dir removed", func() (bool, string) {
		_, err := client.CoreV1().Pods("default").Get(ctx, "graceful", metav1.GetOptions{})
		_, statErr := os.Stat(dir)
		return err != nil && processGone(pid) && os.IsNotExist(statErr), fmt.Sprintf("get: %v, pid alive: %v, dir: %v", err, !processGone(pid), statErr)
	})
	var sawConfirm bool
	for _, act := range client.Actions() {
		if d, ok := act.(k8stesting.DeleteAction); ok && d.GetName() == "graceful" {
			sawConfirm = d.GetDeleteOptions().GracePeriodSeconds != nil && *d.GetDeleteOptions().GracePeriodSeconds == 0
		}
	}
	if !sawConfirm {
		t.Errorf("the agent did not confirm the deletion with gracePeriodSeconds=0")
	}

	// An object that simply disappears (as the fake clientset deletes) is handled too.
	pod = waitPhase(t, client, "abrupt", corev1.PodRunning)
	pid, dir = pidOf(t, pod), a.podDir(pod)
	if err := client.CoreV1().Pods("default").Delete(ctx, "abrupt", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "abrupt pod's process gone and dir removed", func() (bool, string) {
		_, statErr := os.Stat(dir)
		return processGone(pid) && os.IsNotExist(statErr), fmt.Sprintf("pid alive: %v, dir: %v", !processGone(pid), statErr)
	})

	// Stopping the agent stops what still runs and reports it.
	pod = waitPhase(t, client, "survivor", corev1.PodRunning)
	pid = pidOf(t, pod)
	stop()
	if !processGone(pid) {
		t.Errorf("survivor process %d still runs after the agent stopped", pid)
	}
	pod = getPod(t, client, "survivor")
	if term := terminated(t, pod); pod.Status.Phase != corev1.PodFailed || term.ExitCode != 128+int32(syscall.SIGTERM) {
		t.Errorf("survivor: phase %s, terminated %+v", pod.Status.Phase, term)
	}
}

func TestAgentWaitsForSecretThenRuns(t *testing.T) {
	pod := shellPod("needs-secret", "printf %s \"$TOKEN\" > /dev/termination-log")
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "later"}, Key: "token"}}}}
	a, client, rec := newTestAgent(t, execRunner{}, pod)
	runAgent(t, a)
	waitFor(t, "CreateContainerConfigError status", func() (bool, string) {
		p := getPod(t, client, "needs-secret")
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "CreateContainerConfigError", fmt.Sprintf("%+v", cs)
	})
	if ev := events(rec); !strings.Contains(ev, `Warning CreateContainerConfigError env TOKEN: secret "later" not found`) {
		t.Errorf("events:\n%s", ev)
	}
	if _, err := client.CoreV1().Secrets("default").Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: "default"}, Data: map[string][]byte{"token": []byte("t0k")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if term := terminated(t, waitPhase(t, client, "needs-secret", corev1.PodSucceeded)); term.Message != "t0k" {
		t.Errorf("message %q", term.Message)
	}
}

// failingRunner shows the Runner seam: a start failure fails the Pod with StartError.
type failingRunner struct{}

func (failingRunner) Start(*ProcessSpec) (Process, error) {
	return nil, errors.New("exec format error")
}

func TestAgentReportsStartError(t *testing.T) {
	a, client, rec := newTestAgent(t, failingRunner{}, shellPod("broken", "true"))
	runAgent(t, a)
	pod := waitPhase(t, client, "broken", corev1.PodFailed)
	if term := terminated(t, pod); pod.Status.Reason != "StartError" || term.ExitCode != 128 || !strings.Contains(term.Message, "exec format error") {
		t.Errorf("reason %q, terminated %+v", pod.Status.Reason, term)
	}
	waitFor(t, "Failed event", func() (bool, string) {
		ev := events(rec)
		return strings.Contains(ev, "Warning Failed start"), ev
	})
}

func TestAgentRemovesNotReadyTaint(t *testing.T) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "local-node"},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}}},
	}
	a, client, _ := newTestAgent(t, execRunner{}, node)
	runAgent(t, a)
	waitFor(t, "taint removed and node Ready", func() (bool, string) {
		n, err := client.CoreV1().Nodes().Get(context.Background(), "local-node", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(n.Spec.Taints) == 0 && nodeReady(n), fmt.Sprintf("taints %v", n.Spec.Taints)
	})
}
