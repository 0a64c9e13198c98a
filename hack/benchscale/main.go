// Command benchscale measures the operator at scale on the local control plane of
// hack/local-cluster.sh: N ModelWatermarks (default 1,000) verified on a schedule by real Jobs,
// whose Pods the real Job controller (kube-controller-manager) creates and the node agent
// (test/localnode) runs as `fragile verify` processes on mnist-7. The manager is the real
// `fragile manager` binary, as its own process.
//
// What it sets up, and what it skips:
//
//   - mnist-7 (from the onnx-go module) is one shared file on the PVC "models" (the agent maps
//     claims to directories), so every resource reads pvc://models/mnist-7.onnx.
//   - Every resource names one shared key Secret (spec.keySecretRef), so one training serves
//     all: the benchmark runs `fragile watermark` once, for real, and hack/benchscale/trainreplay
//     replays it inside each of the N training Pods (same model bytes, key bytes and flags, or
//     it runs the real binary): it writes that bundle, byte-identical to what the Job would
//     seal, into the resource's bundle Secret and that report as the termination message.
//     Everything else is the product's own path: the controller creates each resource's bundle
//     Secret, trainer ServiceAccount, Role, RoleBinding and training Job; the Job controller
//     runs them; the Pods write through their own ServiceAccount token.
//   - Every verification is real: `fragile verify` reads the model, the key and the bundle
//     from the Pod's volumes, runs 100 triggers and reports through its termination message.
//
// It measures, over a setup phase (create -> Watermarked), the first verification round (->
// Ready) and R periodic rounds: reconcile latency (the manager's native histogram), Jobs
// created per second, missed periods (a slot whose verification did not finish within period +
// slack of the slot), how late verifications start and finish, the API server's request rate
// (apiserver_request_total deltas), the number of Jobs and Pods (the controller keeps the
// newest three finished verifications plus the newest verdict, so the count must stay bounded),
// and the CPU time of every component and the manager's memory.
//
//	eval "$(WITH_CONTROLLER_MANAGER=1 hack/setup-envtest.sh)"; go run ./hack/benchscale -n 1000 -period 600 -rounds 1
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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/hack/benchscale/recipe"
	"github.com/fragile-operator/fragile-operator/hack/internal/benchkit"
	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

const (
	namespace  = "bench"
	jobImage   = "ghcr.io/fragile-operator/fragile:dev"
	keySecret  = "bench-key"
	modelClaim = "models"
	modelFile  = "mnist-7.onnx"
	triggers   = 100
	inputRange = "0,255"
)

type options struct {
	n        int
	period   time.Duration
	rounds   int
	slack    time.Duration
	creators int
	workers  int
	dir      string
	keep     bool
	assets   string
	repoRoot string
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 1000, "number of ModelWatermarks")
	period := flag.Int("period", 600, "spec.verification.periodSeconds of every resource (the product default is 600; the API's minimum 60)")
	flag.IntVar(&o.rounds, "rounds", 1, "periodic verification rounds to measure after the first verification")
	flag.DurationVar(&o.slack, "slack", 30*time.Second, "a slot is missed when its verification has not finished by slot + period + slack")
	flag.IntVar(&o.creators, "creators", 8, "concurrent creators of ModelWatermarks")
	flag.IntVar(&o.workers, "workers", 4, "the manager's --max-concurrent-reconciles")
	flag.StringVar(&o.dir, "dir", "", "work directory (default: a new temporary directory, removed unless -keep)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (cluster, manager and Pod logs)")
	timeout := flag.Duration("timeout", 3*time.Hour, "give up after this long")
	flag.Parse()
	o.period = time.Duration(*period) * time.Second
	o.assets = os.Getenv("KUBEBUILDER_ASSETS")
	if _, err := os.Stat(filepath.Join(o.assets, "kube-controller-manager")); o.assets == "" || err != nil {
		fail(errors.New(`KUBEBUILDER_ASSETS has no kube-controller-manager: eval "$(WITH_CONTROLLER_MANAGER=1 hack/setup-envtest.sh)" first`))
	}
	if *period < 60 {
		fail(errors.New("-period must be at least 60 (the CRD's minimum)"))
	}
	var err error
	if o.repoRoot, err = os.Getwd(); err != nil {
		fail(err)
	}
	// Interrupts cancel the run, so the deferred clean-up stops the manager and the cluster.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchscale:", err)
	os.Exit(1)
}

// paths of the work directory.
type paths struct {
	dir, bin, shim, pvc, replay, cluster string
}

func newPaths(dir string) paths {
	return paths{dir: dir, bin: filepath.Join(dir, "bin"), shim: filepath.Join(dir, "trainreplay"),
		pvc: filepath.Join(dir, "pvc"), replay: filepath.Join(dir, "replay"), cluster: filepath.Join(dir, "cluster")}
}

func run(ctx context.Context, o options) error {
	dir := o.dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "benchscale-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	}
	p := newPaths(dir)
	for _, d := range []string{p.bin, p.shim, filepath.Join(p.pvc, modelClaim), p.replay} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	benchkit.Logf("work directory %s", dir)

	// 1. Binaries: the product, the node agent, and the training replay standing in for the
	// product in training Pods (named fragile, as the agent wants the mapped binary).
	for pkg, out := range map[string]string{
		"./cmd/fragile":                 filepath.Join(p.bin, "fragile"),
		"./test/localnode":              filepath.Join(p.bin, "localnode"),
		"./hack/benchscale/trainreplay": filepath.Join(p.shim, "fragile"),
	} {
		benchkit.Logf("go build %s", pkg)
		build := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", pkg, err)
		}
	}
	fragileBin := filepath.Join(p.bin, "fragile")

	// 2. The one real training.
	trainSeconds, keyBytes, err := trainOnce(ctx, p, fragileBin)
	if err != nil {
		return err
	}

	// 3. The local control plane, stopped by our deferred call or, should this process be
	// killed, by its watchdog.
	benchkit.Logf("starting the local control plane")
	start := exec.CommandContext(ctx, "bash", "hack/local-cluster.sh", "start")
	start.Env = append(os.Environ(), "LOCAL_CLUSTER_DIR="+p.cluster, "LOCAL_NODE_BIN="+filepath.Join(p.bin, "localnode"),
		"LOCAL_NODE_IMAGE_MAP="+jobImage+"="+filepath.Join(p.shim, "fragile"), "LOCAL_NODE_PVC_ROOT="+p.pvc,
		fmt.Sprintf("LOCAL_CLUSTER_OWNER_PID=%d", os.Getpid()))
	start.Stderr = os.Stderr
	if _, err := start.Output(); err != nil {
		return fmt.Errorf("local-cluster.sh start: %w", err)
	}
	defer func() {
		stop := exec.Command("bash", "hack/local-cluster.sh", "stop")
		stop.Env = append(os.Environ(), "LOCAL_CLUSTER_DIR="+p.cluster)
		stop.Stdout, stop.Stderr = os.Stderr, os.Stderr
		if err := stop.Run(); err != nil {
			benchkit.Logf("local-cluster.sh stop: %v", err)
		}
	}()
	kubeconfig := filepath.Join(p.cluster, "kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = -1, 0 // the driver must not be the bottleneck
	cfg.UserAgent = "benchscale"
	scheme := kruntime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = fragilev1alpha1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(o.repoRoot, "config", "crd", "bases")}, ErrorIfPathMissing: true,
	}); err != nil {
		return fmt.Errorf("installing the CRD: %w", err)
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: keySecret, Namespace: namespace},
			Immutable: ptrTo(true), Data: map[string][]byte{contract.KeyDataKey: keyBytes}},
	} {
		if err := c.Create(ctx, obj); err != nil {
			return err
		}
	}

	// 4. The manager.
	addrs, err := benchkit.FreeAddrs(2)
	if err != nil {
		return err
	}
	metricsAddr, probeAddr := addrs[0], addrs[1]
	mlog, err := os.Create(filepath.Join(dir, "manager.log"))
	if err != nil {
		return err
	}
	defer mlog.Close()
	mgr := exec.Command(fragileBin, "manager", "--kubeconfig", kubeconfig, "--job-image", jobImage,
		// Plain HTTP: the benchmark measures reconciles, not the metrics endpoint's token reviews.
		"--metrics-bind-address", metricsAddr, "--metrics-secure=false", "--health-probe-bind-address", probeAddr,
		"--zap-log-level", "error", fmt.Sprintf("--max-concurrent-reconciles=%d", o.workers))
	mgr.Stdout, mgr.Stderr = mlog, mlog
	if err := mgr.Start(); err != nil {
		return err
	}
	defer func() {
		_ = mgr.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = mgr.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = mgr.Process.Kill()
			<-done
		}
	}()
	if err := benchkit.WaitHTTP(ctx, "http://"+probeAddr+"/readyz"); err != nil {
		return fmt.Errorf("manager never became ready: %w", err)
	}

	b := &bench{o: o, c: c, cs: cs, metrics: "http://" + metricsAddr + "/metrics", mgrPID: mgr.Process.Pid,
		pids: clusterPIDs(p.cluster), trainSeconds: trainSeconds}
	b.watch = newJobWatch()
	if err := b.watch.start(ctx, cs); err != nil {
		return err
	}
	return b.measure(ctx)
}

// trainOnce runs the one real training with the flags the controller gives a training Job of
// benchMW, and writes trainreplay's recipe next to it.
func trainOnce(ctx context.Context, p paths, fragileBin string) (seconds float64, key []byte, err error) {
	model, err := zoo.MNIST7()
	if err != nil {
		return 0, nil, err
	}
	modelPath := filepath.Join(p.pvc, modelClaim, modelFile)
	if err := os.WriteFile(modelPath, model, 0o644); err != nil {
		return 0, nil, err
	}
	keyPath := filepath.Join(p.replay, "key")
	if out, err := exec.CommandContext(ctx, fragileBin, "keygen", "--out", keyPath).CombinedOutput(); err != nil {
		return 0, nil, fmt.Errorf("fragile keygen: %v\n%s", err, out)
	}
	flags := []string{"--triggers", fmt.Sprint(triggers), "--input-range", inputRange}
	bundlePath, rawReport := filepath.Join(p.replay, "bundle"), filepath.Join(p.replay, "report.raw.json")
	benchkit.Logf("training mnist-7 once (fragile watermark %s)", strings.Join(flags, " "))
	t0 := time.Now()
	train := exec.CommandContext(ctx, fragileBin, append([]string{"watermark", "--model", modelPath, "--key", keyPath,
		"--out", bundlePath, "--report", rawReport}, flags...)...)
	train.Stdout, train.Stderr = os.Stderr, os.Stderr
	if err := train.Run(); err != nil {
		return 0, nil, fmt.Errorf("fragile watermark: %w", err)
	}
	seconds = time.Since(t0).Seconds()

	// The report as a training Job writing into the bundle Secret gives it: no bundle URI.
	var rep contract.WatermarkReport
	b, err := os.ReadFile(rawReport)
	if err != nil {
		return 0, nil, err
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return 0, nil, err
	}
	rep.BundleURI = ""
	if b, err = json.Marshal(rep); err != nil {
		return 0, nil, err
	}
	reportPath := filepath.Join(p.replay, "report.json")
	if err := os.WriteFile(reportPath, b, 0o644); err != nil {
		return 0, nil, err
	}
	recipeFlags, _, _ := recipe.Flags(flags)
	r := recipe.Recipe{Fragile: fragileBin, Flags: recipeFlags, Bundle: bundlePath, Report: reportPath}
	if r.ModelSHA256, err = recipe.FileDigest(modelPath); err != nil {
		return 0, nil, err
	}
	if r.KeySHA256, err = recipe.FileDigest(keyPath); err != nil {
		return 0, nil, err
	}
	if err := recipe.Write(filepath.Join(p.shim, recipe.FileName), r); err != nil {
		return 0, nil, err
	}
	if key, err = os.ReadFile(keyPath); err != nil {
		return 0, nil, err
	}
	benchkit.Logf("trained in %.1fs: %d triggers, bundle %d bytes", seconds, rep.Triggers, rep.BundleBytes)
	return seconds, key, nil
}

// benchMW is resource i: mnist-7 on the shared PVC, the shared key, the benchmark's period.
func benchMW(i int, period time.Duration) *fragilev1alpha1.ModelWatermark {
	lo, hi, _ := strings.Cut(inputRange, ",")
	return &fragilev1alpha1.ModelWatermark{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("model-%04d", i), Namespace: namespace},
		Spec: fragilev1alpha1.ModelWatermarkSpec{
			Model: fragilev1alpha1.ModelSource{URI: "pvc://" + modelClaim + "/" + modelFile,
				InputRange: fragilev1alpha1.InputRange{Min: lo, Max: hi}},
			KeySecretRef: &fragilev1alpha1.SecretKeyReference{Name: keySecret},
			Triggers:     triggers,
			Verification: fragilev1alpha1.VerificationSpec{PeriodSeconds: int32(period / time.Second)},
		},
	}
}

// clusterPIDs are the control plane's processes, from local-cluster.sh's pid files.
func clusterPIDs(dir string) map[string]int {
	out := map[string]int{}
	for _, name := range []string{"etcd", "apiserver", "controller-manager", "localnode"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil {
			out[name] = pid
		}
	}
	return out
}

type bench struct {
	o            options
	c            client.Client
	cs           kubernetes.Interface
	metrics      string
	mgrPID       int
	pids         map[string]int
	watch        *jobWatch
	trainSeconds float64
}

// mark is everything measured at one moment.
type mark struct {
	at       time.Time
	manager  benchkit.Sample
	requests map[string]float64 // apiserver_request_total by "VERB resource[/subresource]"
	cpu      map[string]float64 // CPU seconds by component
	busy     float64            // machine-wide busy CPU seconds (all processes, /proc/stat)
}

func (b *bench) mark(ctx context.Context) (mark, error) {
	m := mark{at: time.Now(), cpu: map[string]float64{}}
	var err error
	if m.manager, err = benchkit.ScrapeManager(b.metrics, "modelwatermark", b.mgrPID); err != nil {
		return m, err
	}
	if m.requests, err = apiserverRequests(ctx, b.cs); err != nil {
		return m, err
	}
	for name, pid := range b.pids {
		self, children := benchkit.ProcTimes(pid)
		m.cpu[name] = self
		if name == "localnode" {
			// The agent waits for the Pod processes it starts, so their CPU time is its
			// children's.
			m.cpu["Pod processes"] = children
		}
	}
	m.cpu["manager"] = m.manager.CPU
	m.cpu["benchscale"] = benchkit.ProcCPU(os.Getpid())
	m.busy = benchkit.MachineBusy()
	return m, nil
}

func (b *bench) measure(ctx context.Context) error {
	o := b.o
	idle, err := b.mark(ctx)
	if err != nil {
		return err
	}
	sampler := newCountSampler(b.watch, func() float64 {
		m, err := benchkit.ScrapeManager(b.metrics, "modelwatermark", b.mgrPID)
		if err != nil {
			return 0
		}
		return m.QueueDepth
	})
	go sampler.run(ctx, 5*time.Second)

	// Setup: create N resources; each first reconcile creates the bundle Secret, the trainer's
	// ServiceAccount, Role and RoleBinding and the training Job, which the Job controller runs.
	benchkit.Logf("creating %d ModelWatermarks (period %s), load average %s", o.n, o.period, benchkit.LoadAverage())
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, o.creators)
	for range o.creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < o.n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				if err := benchkit.Retry(ctx, func() error { return client.IgnoreAlreadyExists(b.c.Create(ctx, benchMW(i, o.period))) }); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := b.waitAll(ctx, "Watermarked", func(mw *fragilev1alpha1.ModelWatermark) bool {
		return benchkit.Condition(mw, fragilev1alpha1.ConditionWatermarked) == "True"
	}); err != nil {
		return err
	}
	watermarked, err := b.mark(ctx)
	if err != nil {
		return err
	}

	// The first verification of each, due as soon as its training finished.
	if err := b.waitAll(ctx, "first verification", func(mw *fragilev1alpha1.ModelWatermark) bool {
		return benchkit.Condition(mw, fragilev1alpha1.ConditionReady) == "True"
	}); err != nil {
		return err
	}
	ready, err := b.mark(ctx)
	if err != nil {
		return err
	}

	// R periodic rounds: wait until every resource finished the verification of its R-th slot
	// after the first, or until that slot's deadline has passed for all of them.
	first := b.watch.firstSlots()
	var lastFirst time.Time
	for _, s := range first {
		if s.After(lastFirst) {
			lastFirst = s
		}
	}
	deadline := lastFirst.Add(time.Duration(o.rounds)*o.period + o.period + o.slack)
	benchkit.Logf("measuring %d periodic rounds; the last deadline is %s", o.rounds, deadline.Format("15:04:05"))
	for {
		done := 0
		for mw, s0 := range first {
			if b.watch.finishedSlot(mw, s0.Add(time.Duration(o.rounds)*o.period)) {
				done++
			}
		}
		if done == o.n {
			break
		}
		if time.Now().After(deadline) {
			benchkit.Logf("deadline passed with %d of %d resources through round %d", done, o.n, o.rounds)
			break
		}
		jobs, pods := sampler.now()
		benchkit.Logf("periodic rounds: %d/%d resources through round %d; %d Jobs, %d Pods; load %s", done, o.n, o.rounds,
			jobs, pods, benchkit.LoadAverage())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
		}
	}
	end, err := b.mark(ctx)
	if err != nil {
		return err
	}
	sampler.stop()
	b.report(idle, watermarked, ready, end, first, sampler)
	return nil
}

// waitAll polls the resources until done holds for all of them.
func (b *bench) waitAll(ctx context.Context, what string, done func(*fragilev1alpha1.ModelWatermark) bool) error {
	start := time.Now()
	for {
		var mws fragilev1alpha1.ModelWatermarkList
		if err := benchkit.Retry(ctx, func() error { return b.c.List(ctx, &mws, client.InNamespace(namespace)) }); err != nil {
			return err
		}
		n := 0
		for i := range mws.Items {
			if done(&mws.Items[i]) {
				n++
			}
		}
		if n == b.o.n {
			benchkit.Logf("%s: all %d resources after %s", what, n, time.Since(start).Round(time.Second))
			return nil
		}
		benchkit.Logf("%s: %d/%d; load %s", what, n, b.o.n, benchkit.LoadAverage())
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %d of %d when time ran out", what, n, b.o.n)
		case <-time.After(5 * time.Second):
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// --- report --------------------------------------------------------------------------------

func (b *bench) report(idle, watermarked, ready, end mark, first map[string]time.Time, sampler *countSampler) {
	o := b.o
	fmt.Printf("ModelWatermarks: %d, period %s, %d periodic rounds, slack %s; machine: %s, Go %s\n",
		o.n, o.period, o.rounds, o.slack, benchkit.Machine(), strings.TrimPrefix(runtime.Version(), "go"))
	fmt.Printf("one real training of mnist-7 (replayed in the %d training Pods): %.1f s\n", o.n, b.trainSeconds)
	fmt.Printf("load average at the end: %s\n\n", benchkit.LoadAverage())

	phases := []struct {
		name     string
		from, to mark
	}{
		{"create -> Watermarked", idle, watermarked},
		{"first verification -> Ready", watermarked, ready},
		{fmt.Sprintf("%d periodic rounds", o.rounds), ready, end},
		{"all", idle, end},
	}
	fmt.Println("| phase | wall time | reconciles | median | p90 | p99 | max bucket | queue wait mean / p99 | manager CPU per reconcile | API requests/s | verification Jobs created/s |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, ph := range phases {
		h := ph.to.manager.Reconcile.Minus(ph.from.manager.Reconcile)
		q := h.Quantiles(0.5, 0.9, 0.99)
		wall := ph.to.at.Sub(ph.from.at)
		created := b.watch.createdBetween(componentVerification, ph.from.at, ph.to.at)
		wait := ph.to.manager.QueueWait.Minus(ph.from.manager.QueueWait)
		fmt.Printf("| %s | %s | %d | %s | %s | %s | %s | %s / %s | %s | %.1f | %.2f |\n", ph.name, wall.Round(time.Second), h.Count,
			benchkit.MS(q[0]), benchkit.MS(q[1]), benchkit.MS(q[2]), benchkit.MS(h.Max()),
			seconds(wait.Mean()), seconds(wait.Quantile(0.99)),
			benchkit.MS((ph.to.manager.CPU-ph.from.manager.CPU)/float64(max(h.Count, 1))),
			total(ph.to.requests, ph.from.requests)/wall.Seconds(), float64(created)/wall.Seconds())
	}

	sched := b.watch.schedule(first, o.period, o.slack, end.at)
	fmt.Printf("\nperiodic slots due: %d; missed (no verification finished by slot + period + slack): %d, of which %d never started\n",
		sched.slots, sched.missed, sched.skipped)
	fmt.Printf("verification start after its slot: %s; finish after its slot: %s\n", spread(sched.startLate), spread(sched.finishLate))
	complete, failed := b.watch.outcomes(componentVerification)
	fmt.Printf("verification Jobs: %d created, %d Complete (intact), %d Failed; peak creation rate %.1f/s (10 s window)\n",
		b.watch.created(componentVerification), complete, failed, b.watch.peakRate(componentVerification, 10*time.Second))
	fmt.Printf("training Jobs: %d created, created at %.1f/s (first to last)\n", b.watch.created(componentTraining),
		b.watch.spanRate(componentTraining))
	jobsMax, podsMax := sampler.max()
	jobsEnd, podsEnd := sampler.now()
	fmt.Printf("Jobs in the namespace: at most %d, %d at the end; Pods: at most %d, %d at the end "+
		"(the controller keeps per resource its training Job and at most 3 finished verifications + the newest verdict + 1 running)\n",
		jobsMax, jobsEnd, podsMax, podsEnd)

	wall := end.at.Sub(ready.at).Seconds()
	fmt.Printf("\nCPU during the periodic rounds (%s; 100%% = one core):", end.at.Sub(ready.at).Round(time.Second))
	var names []string
	for k := range end.cpu {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Printf(" %s %.0f%%,", k, 100*(end.cpu[k]-ready.cpu[k])/wall)
	}
	fmt.Printf(" whole machine (every process, other work too) %.0f%%\n", 100*(end.busy-ready.busy)/wall)
	if done := b.watch.finishedBetween(componentVerification, ready.at, end.at); done > 0 {
		cp := 0.0
		for _, k := range []string{"apiserver", "etcd", "controller-manager", "localnode", "manager"} {
			cp += end.cpu[k] - ready.cpu[k]
		}
		fmt.Printf("per verification (%d finished): %s CPU in its Pod process, %s CPU in the control plane "+
			"(API server, etcd, controller manager, node agent, manager), %.1f API requests\n", done,
			benchkit.MS((end.cpu["Pod processes"]-ready.cpu["Pod processes"])/float64(done)), benchkit.MS(cp/float64(done)),
			total(end.requests, ready.requests)/float64(done))
	}
	fmt.Printf("\nAPI server requests during the periodic rounds: %.1f/s; the largest:\n", total(end.requests, ready.requests)/wall)
	type kv struct {
		k string
		v float64
	}
	var reqs []kv
	for k, v := range end.requests {
		if d := v - ready.requests[k]; d > 0 {
			reqs = append(reqs, kv{k, d})
		}
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].v > reqs[j].v })
	for _, r := range reqs[:min(12, len(reqs))] {
		fmt.Printf("  %-40s %7.2f/s\n", r.k, r.v/wall)
	}
	fmt.Printf("manager work queue: at most %.0f requests waiting (sampled every 5 s); %d concurrent reconciles\n",
		sampler.maxQueue(), o.workers)
	fmt.Printf("\nmanager memory: RSS %s after the first round, %s at the end, peak (VmHWM) %s; Go heap in use %s at the end\n",
		benchkit.MiB(ready.manager.RSS), benchkit.MiB(end.manager.RSS), benchkit.MiB(end.manager.HWM),
		benchkit.MiB(end.manager.HeapInuse))
}

func total(now, before map[string]float64) float64 {
	t := 0.0
	for k, v := range now {
		t += v - before[k]
	}
	return t
}

func seconds(s float64) string {
	if s < 1 {
		return benchkit.MS(s)
	}
	return fmt.Sprintf("%.1f s", s)
}

// spread formats the median, p99 and max of xs (seconds).
func spread(xs []float64) string {
	if len(xs) == 0 {
		return "none"
	}
	sort.Float64s(xs)
	at := func(q float64) float64 { return xs[min(len(xs)-1, int(q*float64(len(xs))))] }
	return fmt.Sprintf("median %.1f s, p99 %.1f s, max %.1f s", at(0.5), at(0.99), xs[len(xs)-1])
}
