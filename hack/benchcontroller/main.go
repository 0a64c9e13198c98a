// Command benchcontroller measures the ModelWatermark controller at scale: N resources
// (default 1,000) on envtest's real kube-apiserver and etcd, reconciled by the real
// `fragile manager` binary running as its own process, so its memory is the manager's alone.
//
// It plays the Job controller and kubelet for every Job (there is none in envtest): each
// training Job writes its bundle and completes, each verification Job finds the model intact.
// It runs three phases, each until every resource reaches the phase's condition: creation to
// Watermarked, first verification to Ready, and a second, periodic verification 60 seconds later
// (the minimum period), which exercises RequeueAfter for all resources at once.
//
// Reconcile latency comes from the manager's own controller_runtime_reconcile_time_seconds
// histogram, scraped in the protobuf format so its native (exponential, ~9% wide) buckets are
// available; memory from /proc/PID/status (VmRSS, VmHWM) and the Go heap metric.
//
//	eval "$(hack/setup-envtest.sh)"; go run ./hack/benchcontroller -n 1000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/hack/internal/benchkit"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

const (
	namespace = "bench"
	period    = 60 // seconds, the minimum the API allows
)

func main() {
	var (
		n       = flag.Int("n", 1000, "number of ModelWatermarks")
		workers = flag.Int("workers", 8, "concurrent API writers playing the Job controller")
		timeout = flag.Duration("timeout", 20*time.Minute, "give up after this long")
		binary  = flag.String("binary", "", "fragile binary to run as the manager (default: go build ./cmd/fragile)")
	)
	flag.Parse()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fail(errors.New(`KUBEBUILDER_ASSETS is not set: eval "$(hack/setup-envtest.sh)" first`))
	}
	// Interrupts cancel the run, so the deferred clean-up stops the manager and envtest.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := run(ctx, *n, *workers, *binary); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchcontroller:", err)
	os.Exit(1)
}

type bench struct {
	c       client.Client
	n       int
	workers int
	metrics string // manager's /metrics URL
	pid     int
}

func run(ctx context.Context, n, workers int, binary string) error {
	tmp, err := os.MkdirTemp("", "benchcontroller-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	if binary == "" {
		binary = filepath.Join(tmp, "fragile")
		benchkit.Logf("building the manager")
		build := exec.Command("go", "build", "-o", binary, "./cmd/fragile")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}

	env := &envtest.Environment{CRDDirectoryPaths: []string{"config/crd/bases"}, ErrorIfCRDPathMissing: true}
	// Stop even after a failed Start: envtest leaves its processes running when, say, a CRD
	// fails to install.
	defer env.Stop()
	cfg, err := env.Start()
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = -1, 0 // the driver must not be the bottleneck
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		return err
	}
	scheme := kruntime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = fragilev1alpha1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}

	addrs, err := benchkit.FreeAddrs(2)
	if err != nil {
		return err
	}
	metricsAddr, probeAddr := addrs[0], addrs[1]
	mgr := exec.CommandContext(ctx, binary, "manager", "--kubeconfig", kubeconfig,
		// Plain HTTP: the benchmark measures reconciles, not the metrics endpoint's token reviews.
		"--metrics-bind-address", metricsAddr, "--metrics-secure=false", "--health-probe-bind-address", probeAddr, "--zap-log-level", "error")
	mgr.Stdout, mgr.Stderr = os.Stderr, os.Stderr
	if err := mgr.Start(); err != nil {
		return err
	}
	defer func() { _ = mgr.Process.Signal(os.Interrupt); _ = mgr.Wait() }()
	if err := benchkit.WaitHTTP(ctx, "http://"+probeAddr+"/readyz"); err != nil {
		return fmt.Errorf("manager never became ready: %w", err)
	}
	b := &bench{c: c, n: n, workers: workers, metrics: "http://" + metricsAddr + "/metrics", pid: mgr.Process.Pid}
	idle, err := b.scrape()
	if err != nil {
		return err
	}

	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: namespace}},
	} {
		if err := c.Create(ctx, obj); err != nil {
			return err
		}
	}

	type phase struct {
		name    string
		wall    time.Duration
		latency benchkit.Histogram
		cpu     float64
	}
	var phases []phase
	last := idle
	mark := func(name string, start time.Time) error {
		now, err := b.scrape()
		if err != nil {
			return err
		}
		phases = append(phases, phase{name, time.Since(start), now.Reconcile.Minus(last.Reconcile), now.CPU - last.CPU})
		last = now
		return nil
	}
	begin := time.Now()

	// Phase 1: create N resources; every reconcile creates the key and bundle Secrets, the
	// trainer's ServiceAccount, Role and RoleBinding and the training Job. The driver completes
	// each training Job as it appears.
	start := time.Now()
	benchkit.Logf("creating %d ModelWatermarks", n)
	if err := b.parallel(ctx, n, func(i int) error {
		return benchkit.Retry(ctx, func() error { return client.IgnoreAlreadyExists(c.Create(ctx, benchMW(i))) })
	}); err != nil {
		return err
	}
	if err := b.completeJobs(ctx, "training", trainingReport, func(mw *fragilev1alpha1.ModelWatermark) bool {
		return benchkit.Condition(mw, fragilev1alpha1.ConditionWatermarked) == "True"
	}); err != nil {
		return err
	}
	if err := mark("create -> Watermarked", start); err != nil {
		return err
	}

	// Phase 2: the first verification of each, started as soon as training ended.
	start = time.Now()
	if err := b.completeJobs(ctx, "verification", intactReport, func(mw *fragilev1alpha1.ModelWatermark) bool {
		return benchkit.Condition(mw, fragilev1alpha1.ConditionReady) == "True"
	}); err != nil {
		return err
	}
	if err := mark("first verification -> Ready", start); err != nil {
		return err
	}
	settled, err := b.scrape()
	if err != nil {
		return err
	}

	// Phase 3: a period later every resource is due again; each must run a second verification.
	start = time.Now()
	benchkit.Logf("waiting for the periodic verification round (period %ds)", period)
	if err := b.completeJobs(ctx, "verification", intactReport, func(mw *fragilev1alpha1.ModelWatermark) bool {
		lv := mw.Status.LastVerification
		return benchkit.Condition(mw, fragilev1alpha1.ConditionReady) == "True" && lv != nil &&
			mw.Status.Training != nil && mw.Status.Training.CompletionTime != nil &&
			lv.Time.Sub(mw.Status.Training.CompletionTime.Time) >= period*time.Second
	}); err != nil {
		return err
	}
	if err := mark("periodic verification round", start); err != nil {
		return err
	}
	total := last.Reconcile.Minus(idle.Reconcile)
	end, err := b.scrape()
	if err != nil {
		return err
	}

	// Report.
	fmt.Printf("ModelWatermarks: %d, wall time %s, machine: %s, Go %s\n\n", n,
		time.Since(begin).Round(time.Second), benchkit.Machine(), strings.TrimPrefix(runtime.Version(), "go"))
	fmt.Println("| phase | wall time | reconciles | median | p90 | p99 | max bucket | manager CPU per reconcile |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, p := range append(phases, phase{"all", time.Since(begin), total, last.CPU - idle.CPU}) {
		q := p.latency.Quantiles(0.5, 0.9, 0.99)
		fmt.Printf("| %s | %s | %d | %s | %s | %s | %s | %s |\n", p.name, p.wall.Round(time.Second), p.latency.Count,
			benchkit.MS(q[0]), benchkit.MS(q[1]), benchkit.MS(q[2]), benchkit.MS(p.latency.Max()),
			benchkit.MS(p.cpu/float64(max(p.latency.Count, 1))))
	}
	fmt.Printf("\nmanager memory: RSS %s after the first round, %s at the end, peak (VmHWM) %s; Go heap in use %s at the end\n",
		benchkit.MiB(settled.RSS), benchkit.MiB(end.RSS), benchkit.MiB(end.HWM), benchkit.MiB(end.HeapInuse))
	return nil
}

// benchMW is resource i: mnist-7 on a PVC (never read: no Job really runs), period 60 s.
func benchMW(i int) *fragilev1alpha1.ModelWatermark {
	return &fragilev1alpha1.ModelWatermark{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("model-%04d", i), Namespace: namespace},
		Spec: fragilev1alpha1.ModelWatermarkSpec{
			Model: fragilev1alpha1.ModelSource{URI: "pvc://models/mnist-7.onnx",
				InputRange: fragilev1alpha1.InputRange{Min: "0", Max: "255"}},
			Triggers:     100,
			Verification: fragilev1alpha1.VerificationSpec{PeriodSeconds: period},
		},
	}
}

func trainingReport() string {
	b, _ := json.Marshal(fragile.WatermarkReport{Result: fragile.WatermarkSucceeded, Triggers: 100, KeyMatch: 1,
		Steps: 120, ModelDigest: "sha256:" + strings.Repeat("ab", 32), BundleBytes: 40960})
	return string(b)
}

func intactReport() string {
	b, _ := json.Marshal(fragile.VerifyReport{Result: fragile.ResultIntact, Total: 100, DigestMatches: true,
		ModelDigest: "sha256:" + strings.Repeat("ab", 32)})
	return string(b)
}

// completeJobs finishes every running Job of the component until done holds for all resources.
func (b *bench) completeJobs(ctx context.Context, component string, report func() string,
	done func(*fragilev1alpha1.ModelWatermark) bool) error {
	finished := map[string]bool{}
	for {
		var mws fragilev1alpha1.ModelWatermarkList
		if err := benchkit.Retry(ctx, func() error { return b.c.List(ctx, &mws, client.InNamespace(namespace)) }); err != nil {
			return err
		}
		ready := 0
		for i := range mws.Items {
			if done(&mws.Items[i]) {
				ready++
			}
		}
		if ready == b.n {
			benchkit.Logf("%s: all %d resources done", component, b.n)
			return nil
		}
		var jobs batchv1.JobList
		if err := benchkit.Retry(ctx, func() error {
			return b.c.List(ctx, &jobs, client.InNamespace(namespace),
				client.MatchingLabels{"app.kubernetes.io/component": component})
		}); err != nil {
			return err
		}
		var todo []*batchv1.Job
		for i := range jobs.Items {
			j := &jobs.Items[i]
			if len(j.Status.Conditions) == 0 && !finished[j.Name] && j.DeletionTimestamp.IsZero() {
				todo = append(todo, j)
				finished[j.Name] = true
			}
		}
		benchkit.Logf("%s: %d/%d done, completing %d Jobs", component, ready, b.n, len(todo))
		if err := b.parallel(ctx, len(todo), func(i int) error {
			return benchkit.Retry(ctx, func() error { return b.finish(ctx, todo[i], report(), component == "training") })
		}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %d of %d done when time ran out", component, ready, b.n)
		case <-time.After(time.Second):
		}
	}
}

// finish plays the training Job (bundle written), the kubelet (terminated Pod with the report)
// and the Job controller (Complete).
func (b *bench) finish(ctx context.Context, job *batchv1.Job, message string, seal bool) error {
	mwName := job.Labels[fragilev1alpha1.LabelModelWatermark]
	if seal {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"sha256:b0b0"}},"data":{"bundle":"c2VhbGVk"}}`,
			contract.AnnotationBundleDigest)
		bundle := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: mwName + "-bundle", Namespace: namespace}}
		if err := b.c.Patch(ctx, bundle, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			return err
		}
	}
	now := metav1.Now()
	start := metav1.NewTime(now.Add(-time.Second))
	labels := map[string]string{"batch.kubernetes.io/job-name": job.Name}
	for k, v := range job.Spec.Template.Labels {
		labels[k] = v
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name, Namespace: namespace, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID, Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "fragile", Image: "fragile"}}},
	}
	if err := b.c.Create(ctx, pod); apierrors.IsAlreadyExists(err) {
		// A retry: continue from wherever the previous attempt stopped.
		if err := b.c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "fragile", Image: "fragile",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 0, Message: message, Reason: "Completed", StartedAt: start, FinishedAt: now}},
	}}}
	if err := b.c.Status().Update(ctx, pod); err != nil {
		return err
	}
	if err := b.c.Get(ctx, client.ObjectKeyFromObject(job), job); err != nil {
		return err
	}
	if len(job.Status.Conditions) > 0 {
		return nil
	}
	job.Status.StartTime = &start
	job.Status.CompletionTime = &now
	job.Status.Succeeded = 1
	job.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
	}
	return b.c.Status().Update(ctx, job)
}

func (b *bench) parallel(ctx context.Context, n int, f func(i int) error) error {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for w := 0; w < b.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// scrape samples the manager's metrics and process.
func (b *bench) scrape() (benchkit.Sample, error) {
	return benchkit.ScrapeManager(b.metrics, "modelwatermark", b.pid)
}
