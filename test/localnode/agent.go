package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
)

// Event reasons the agent uses besides the kubelet's usual ones.
const (
	ReasonRefused     = "UnsupportedByLocalNode"
	ReasonNotEnforced = "NotEnforcedByLocalNode"
	ReasonRestarted   = "LocalNodeRestarted"
)

// Agent is the local node agent: one Node, the Pods bound to it, one host process per Pod.
type Agent struct {
	Client        kubernetes.Interface
	Translator    *Translator
	Runner        Runner
	Recorder      record.EventRecorder
	NodeName      string
	RootDir       string // per-pod directories live in RootDir/pods
	SchedulerName string // unscheduled Pods for this scheduler are bound to NodeName
	MaxGrace      time.Duration
	MaxPods       int64
	Heartbeat     time.Duration
	RetryWait     time.Duration // how long to wait before retrying a Pod whose Secret/ConfigMap is missing
	Log           *log.Logger

	mu     sync.Mutex
	runs   map[types.UID]*podRun
	queue  workqueue.TypedRateLimitingInterface[string]
	lister corelisters.PodLister
	labels map[string]string // the Node's labels, for nodeSelector checks
	procs  sync.WaitGroup
}

// podRun is what the agent remembers about a Pod bound to its node, from the first attempt to
// run it until the Pod object is gone.
type podRun struct {
	uid      types.UID
	key      string
	dir      string
	proc     Process // nil until started
	done     chan struct{}
	finished bool   // terminal status written (or refused): never start again
	killing  bool   // deletion requested, Stop sent
	waitMsg  string // last "waiting for" message reported, to avoid repeating events
	schedMsg string
}

func (a *Agent) init() {
	if a.runs == nil {
		a.runs = map[types.UID]*podRun{}
	}
	if a.queue == nil {
		a.queue = workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	}
	if a.Log == nil {
		a.Log = log.New(os.Stderr, "localnode: ", log.LstdFlags)
	}
	if a.RetryWait == 0 {
		a.RetryWait = 2 * time.Second
	}
	if a.MaxGrace == 0 {
		a.MaxGrace = 10 * time.Second
	}
	if a.Heartbeat == 0 {
		a.Heartbeat = 10 * time.Second
	}
	if a.SchedulerName == "" {
		a.SchedulerName = corev1.DefaultSchedulerName
	}
}

// Run registers the Node, watches Pods and runs them until ctx ends; then it stops every
// process it started, reports their Pods, and marks the Node not ready.
func (a *Agent) Run(ctx context.Context) error {
	a.init()
	if err := a.registerNode(ctx); err != nil {
		return fmt.Errorf("register node %s: %w", a.NodeName, err)
	}
	factory := informers.NewSharedInformerFactory(a.Client, 0)
	podInformer := factory.Core().V1().Pods()
	a.lister = podInformer.Lister()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			a.queue.Add(key)
		}
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced) {
		factory.Shutdown()
		if ctx.Err() != nil { // stopped before it got going
			return a.shutdown()
		}
		return fmt.Errorf("pod informer did not sync")
	}
	a.removeStaleDirs()
	a.Log.Printf("node %s ready; root %s", a.NodeName, a.RootDir)

	var workers sync.WaitGroup
	for range 2 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for a.processNext(ctx) {
			}
		}()
	}
	t := time.NewTicker(a.Heartbeat)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
			if err := a.updateNodeStatus(ctx, true); err != nil {
				a.Log.Printf("heartbeat: %v", err)
			}
		}
	}
	a.queue.ShutDown()
	workers.Wait()
	factory.Shutdown()
	return a.shutdown()
}

// shutdown stops all processes and waits for their status reports, with a fresh context
// since the caller's is done.
func (a *Agent) shutdown() error {
	a.mu.Lock()
	for _, r := range a.runs {
		if r.proc != nil && !r.finished {
			r.killing = true
			go r.proc.Stop(a.MaxGrace)
		}
	}
	a.mu.Unlock()
	a.procs.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.updateNodeStatus(ctx, false); err != nil {
		a.Log.Printf("mark node not ready: %v", err)
	}
	return nil
}

func (a *Agent) processNext(ctx context.Context) bool {
	key, quit := a.queue.Get()
	if quit {
		return false
	}
	defer a.queue.Done(key)
	if err := a.sync(ctx, key); err != nil {
		a.Log.Printf("pod %s: %v (will retry)", key, err)
		a.queue.AddRateLimited(key)
		return true
	}
	a.queue.Forget(key)
	return true
}

// sync brings one Pod a step forward.
func (a *Agent) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := a.lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		a.forget(key, "")
		return nil
	}
	if err != nil {
		return err
	}
	a.forget(key, pod.UID) // an older Pod of the same name
	if pod.Spec.NodeName == "" {
		if pod.DeletionTimestamp == nil {
			return a.schedule(ctx, pod)
		}
		return nil
	}
	if pod.Spec.NodeName != a.NodeName {
		return nil
	}
	a.mu.Lock()
	run := a.runs[pod.UID]
	handled := run != nil && (run.proc != nil || run.finished)
	a.mu.Unlock()
	if pod.DeletionTimestamp != nil {
		return a.terminate(ctx, pod, run)
	}
	if handled {
		return nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	if run == nil && containerStarted(pod) {
		// Started by an earlier agent process whose child is gone with it.
		msg := "the local node agent restarted and lost this pod's process"
		a.Recorder.Event(pod, corev1.EventTypeWarning, ReasonRestarted, msg)
		a.setFinished(a.remember(pod))
		return a.failPod(ctx, pod, ReasonRestarted, msg, 137)
	}
	return a.start(ctx, pod)
}

func containerStarted(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running != nil || cs.State.Terminated != nil {
			return true
		}
	}
	return false
}

func (a *Agent) podDir(pod *corev1.Pod) string {
	return filepath.Join(a.RootDir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}

// remember returns the run for pod, creating it.
func (a *Agent) remember(pod *corev1.Pod) *podRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.runs[pod.UID]
	if r == nil {
		key, _ := cache.MetaNamespaceKeyFunc(pod)
		r = &podRun{uid: pod.UID, key: key, dir: a.podDir(pod), done: make(chan struct{})}
		a.runs[pod.UID] = r
	}
	return r
}

func (a *Agent) setFinished(r *podRun) {
	a.mu.Lock()
	r.finished = true
	a.mu.Unlock()
}

// forget drops every run for key except keep: the Pod object is gone, so its process is
// stopped and its directory removed.
func (a *Agent) forget(key string, keep types.UID) {
	a.mu.Lock()
	var gone []*podRun
	for uid, r := range a.runs {
		if r.key == key && uid != keep {
			gone = append(gone, r)
			delete(a.runs, uid)
		}
	}
	running := map[*podRun]bool{}
	for _, r := range gone {
		running[r] = r.proc != nil && !r.finished
	}
	a.mu.Unlock()
	for _, r := range gone {
		if running[r] {
			a.Log.Printf("pod %s (%s) deleted: stopping pid %d", key, r.uid, r.proc.Pid())
			r.proc.Stop(a.MaxGrace)
			<-r.done
		}
		if err := os.RemoveAll(r.dir); err != nil {
			a.Log.Printf("pod %s: remove %s: %v", key, r.dir, err)
		}
	}
}

// removeStaleDirs removes per-pod directories of Pods that no longer exist.
func (a *Agent) removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(a.RootDir, "pods", "*"))
	pods, _ := a.lister.List(labels.Everything())
	live := map[string]bool{}
	for _, p := range pods {
		live[a.podDir(p)] = true
	}
	for _, d := range dirs {
		if !live[d] {
			_ = os.RemoveAll(d)
		}
	}
}

// schedule binds an unscheduled Pod to this node: with no scheduler in the local control
// plane, the agent is the scheduler. Only nodeSelector is checked.
func (a *Agent) schedule(ctx context.Context, pod *corev1.Pod) error {
	if pod.Spec.SchedulerName != a.SchedulerName || len(pod.Spec.SchedulingGates) > 0 {
		return nil
	}
	for k, v := range pod.Spec.NodeSelector {
		if a.labels[k] != v {
			r := a.remember(pod)
			msg := fmt.Sprintf("node %s does not match the pod's nodeSelector %s=%s", a.NodeName, k, v)
			if r.schedMsg != msg {
				r.schedMsg = msg
				a.Recorder.Event(pod, corev1.EventTypeWarning, "FailedScheduling", msg)
			}
			return nil
		}
	}
	err := a.Client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: a.NodeName},
	}, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or bound by someone else meanwhile
	}
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	a.Recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s (local node agent)", pod.Namespace, pod.Name, a.NodeName)
	return nil
}

// start prepares and starts the Pod's process, or refuses it, or leaves it waiting.
func (a *Agent) start(ctx context.Context, pod *corev1.Pod) error {
	run := a.remember(pod)
	spec, err := a.Translator.Prepare(ctx, pod, run.dir)
	var wait *WaitError
	switch {
	case IsRefusal(err):
		a.Log.Printf("pod %s refused: %v", run.key, err)
		a.Recorder.Event(pod, corev1.EventTypeWarning, ReasonRefused, err.Error())
		a.setFinished(run)
		_ = os.RemoveAll(filepath.Join(run.dir, "volumes"))
		return a.failPod(ctx, pod, ReasonRefused, err.Error(), 128)
	case errors.As(err, &wait):
		if run.waitMsg != wait.Msg {
			run.waitMsg = wait.Msg
			a.Log.Printf("pod %s waiting: %s", run.key, wait.Msg)
			a.Recorder.Event(pod, corev1.EventTypeWarning, wait.Reason, wait.Msg)
			if err := a.updateStatus(ctx, pod, func(st *corev1.PodStatus) {
				st.Phase = corev1.PodPending
				st.ContainerStatuses = []corev1.ContainerStatus{a.containerStatus(pod, corev1.ContainerState{
					Waiting: &corev1.ContainerStateWaiting{Reason: wait.Reason, Message: wait.Msg},
				})}
			}); err != nil {
				return err
			}
		}
		a.queue.AddAfter(run.key, a.RetryWait)
		return nil
	case err != nil:
		return err
	}
	if len(spec.Ignored) > 0 {
		a.Recorder.Eventf(pod, corev1.EventTypeNormal, ReasonNotEnforced,
			"runs as a plain host process; not enforced: %s", strings.Join(spec.Ignored, ", "))
	}
	proc, err := a.Runner.Start(spec)
	if err != nil {
		msg := fmt.Sprintf("start %s: %v", spec.Path, err)
		a.Recorder.Event(pod, corev1.EventTypeWarning, "Failed", msg)
		a.setFinished(run)
		return a.failPod(ctx, pod, "StartError", msg, 128)
	}
	started := metav1.Now()
	a.mu.Lock()
	run.proc = proc
	a.mu.Unlock()
	a.procs.Add(1)
	a.Log.Printf("pod %s: started pid %d: %s %q (dir %s)", run.key, proc.Pid(), spec.Path, spec.Argv[1:], run.dir)
	a.Recorder.Eventf(pod, corev1.EventTypeNormal, "Started", "Started local process %d: %s (log: %s)", proc.Pid(), spec.Path, spec.LogPath)
	if err := a.updateStatus(ctx, pod, func(st *corev1.PodStatus) {
		st.Phase = corev1.PodRunning
		st.StartTime = &started
		cs := a.containerStatus(pod, corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}})
		cs.Ready, cs.Started = true, ptr.To(true)
		cs.ContainerID = fmt.Sprintf("localnode://%d", proc.Pid())
		st.ContainerStatuses = []corev1.ContainerStatus{cs}
		setConditions(st, true, started)
	}); err != nil {
		a.Log.Printf("pod %s: report Running: %v", run.key, err)
	}
	go a.watch(pod, run, spec, started)
	return nil
}

// watch waits for the process, enforces activeDeadlineSeconds, and reports the end.
func (a *Agent) watch(pod *corev1.Pod, run *podRun, spec *ProcessSpec, started metav1.Time) {
	defer a.procs.Done()
	exited := make(chan int, 1)
	go func() { exited <- run.proc.Wait() }()
	var deadline <-chan time.Time
	if s := pod.Spec.ActiveDeadlineSeconds; s != nil {
		t := time.NewTimer(time.Until(started.Add(time.Duration(*s) * time.Second)))
		defer t.Stop()
		deadline = t.C
	}
	podReason, podMsg := "", ""
	var code int
	select {
	case code = <-exited:
	case <-deadline:
		podReason = "DeadlineExceeded"
		podMsg = fmt.Sprintf("Pod was active on the node longer than the specified deadline (%ds)", *pod.Spec.ActiveDeadlineSeconds)
		a.Recorder.Event(pod, corev1.EventTypeNormal, "DeadlineExceeded", podMsg)
		run.proc.Stop(a.grace(pod))
		code = <-exited
	}
	finished := metav1.Now()
	msg := terminationMessage(spec, code)
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	a.Log.Printf("pod %s: pid %d exited %d", run.key, run.proc.Pid(), code)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.updateStatus(ctx, pod, func(st *corev1.PodStatus) {
		st.Phase = corev1.PodSucceeded
		if code != 0 || podReason != "" {
			st.Phase = corev1.PodFailed
		}
		st.Reason, st.Message = podReason, podMsg
		st.StartTime = &started
		cs := a.containerStatus(pod, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: int32(code), Reason: reason, Message: msg,
			StartedAt: started, FinishedAt: finished,
			ContainerID: fmt.Sprintf("localnode://%d", run.proc.Pid()),
		}})
		cs.Started = ptr.To(false)
		cs.ContainerID = fmt.Sprintf("localnode://%d", run.proc.Pid())
		st.ContainerStatuses = []corev1.ContainerStatus{cs}
		setConditions(st, false, finished)
	}); err != nil && !apierrors.IsNotFound(err) {
		a.Log.Printf("pod %s: report exit: %v", run.key, err)
	}
	// Secrets and ConfigMaps do not outlive the process; logs stay until the Pod is deleted.
	_ = os.RemoveAll(filepath.Join(run.dir, "volumes"))
	a.mu.Lock()
	run.finished = true
	a.mu.Unlock()
	close(run.done)
	if !a.queue.ShuttingDown() {
		a.queue.Add(run.key) // a pending deletion can now be confirmed
	}
}

// terminate handles a Pod being deleted: stop the process, then confirm the deletion with
// grace period 0, which is what the API server waits for from a node.
func (a *Agent) terminate(ctx context.Context, pod *corev1.Pod, run *podRun) error {
	a.mu.Lock()
	if run != nil && run.proc != nil && !run.finished {
		if !run.killing {
			run.killing = true
			grace := a.grace(pod)
			a.Log.Printf("pod %s deleted: stopping pid %d (grace %s)", run.key, run.proc.Pid(), grace)
			a.Recorder.Eventf(pod, corev1.EventTypeNormal, "Killing", "Stopping local process %d", run.proc.Pid())
			go run.proc.Stop(grace)
		}
		a.mu.Unlock()
		return nil // watch re-queues the Pod once the process is gone
	}
	a.mu.Unlock()
	if g := pod.DeletionGracePeriodSeconds; g != nil && *g == 0 {
		return nil // already confirmed; finalizers hold the object
	}
	uid := pod.UID
	err := a.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func (a *Agent) grace(pod *corev1.Pod) time.Duration {
	g := 30 * time.Second
	if s := pod.Spec.TerminationGracePeriodSeconds; s != nil {
		g = time.Duration(*s) * time.Second
	}
	if pod.DeletionGracePeriodSeconds != nil {
		g = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	}
	return min(g, a.MaxGrace)
}

// failPod reports a Pod that never ran: phase Failed with reason and message at the Pod level
// and a terminated container, so Job controllers and people reading `kubectl describe` see why.
func (a *Agent) failPod(ctx context.Context, pod *corev1.Pod, reason, msg string, code int32) error {
	now := metav1.Now()
	return a.updateStatus(ctx, pod, func(st *corev1.PodStatus) {
		st.Phase = corev1.PodFailed
		st.Reason, st.Message = reason, msg
		if st.StartTime == nil {
			st.StartTime = &now
		}
		st.ContainerStatuses = []corev1.ContainerStatus{a.containerStatus(pod, corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, Message: msg, StartedAt: now, FinishedAt: now},
		})}
		setConditions(st, false, now)
	})
}

var errPodGone = apierrors.NewNotFound(corev1.Resource("pods"), "")

// updateStatus applies mutate to the Pod's current status and writes it, retrying conflicts.
func (a *Agent) updateStatus(ctx context.Context, pod *corev1.Pod, mutate func(*corev1.PodStatus)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := a.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID {
			return errPodGone
		}
		ip := a.Translator.HostIP
		cur.Status.HostIP, cur.Status.PodIP = ip, ip
		cur.Status.HostIPs = []corev1.HostIP{{IP: ip}}
		cur.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		mutate(&cur.Status)
		_, err = a.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func (a *Agent) containerStatus(pod *corev1.Pod, state corev1.ContainerState) corev1.ContainerStatus {
	c := pod.Spec.Containers[0]
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: state, Started: ptr.To(false)}
	if bin, ok := a.Translator.ImageMap[c.Image]; ok {
		cs.ImageID = "localnode://" + bin
	}
	return cs
}

// setConditions sets the readiness conditions the kubelet maintains.
func setConditions(st *corev1.PodStatus, running bool, at metav1.Time) {
	status := corev1.ConditionFalse
	if running {
		status = corev1.ConditionTrue
	}
	set := func(t corev1.PodConditionType, s corev1.ConditionStatus, reason string) {
		for i := range st.Conditions {
			if st.Conditions[i].Type == t {
				if st.Conditions[i].Status != s {
					st.Conditions[i].LastTransitionTime = at
				}
				st.Conditions[i].Status, st.Conditions[i].Reason = s, reason
				return
			}
		}
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: s, Reason: reason, LastTransitionTime: at})
	}
	reason := ""
	if !running {
		reason = "PodCompleted"
	}
	set(corev1.PodInitialized, corev1.ConditionTrue, "")
	set(corev1.PodReadyToStartContainers, status, "")
	set(corev1.ContainersReady, status, reason)
	set(corev1.PodReady, status, reason)
}

// terminationMessage reads the termination message file as the kubelet does: at most 4096
// bytes; with FallbackToLogsOnError and an empty file after a failure, the log's tail.
func terminationMessage(spec *ProcessSpec, code int) string {
	msg := readCapped(spec.TerminationMessagePath, maxTerminationMessageBytes, false)
	if msg == "" && code != 0 && spec.FallbackToLogsOnError {
		msg = readCapped(spec.LogPath, 2048, true)
		lines := strings.Split(msg, "\n")
		if len(lines) > 80 {
			msg = strings.Join(lines[len(lines)-80:], "\n")
		}
	}
	return msg
}

func readCapped(p string, n int64, tail bool) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	if tail {
		if st, err := f.Stat(); err == nil && st.Size() > n {
			_, _ = f.Seek(st.Size()-n, 0)
		}
	}
	buf := make([]byte, n)
	m, _ := io.ReadFull(f, buf)
	return string(buf[:m])
}
