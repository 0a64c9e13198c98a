package e2e

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/internal/zoo"
)

// gatedModel serves mnist-7 over HTTP on loopback the way the test scripts it: the first
// failures requests answer 503, and every later request waits until the test opens the gate,
// so that the Job reading it is known to be running while the test kills the manager.
type gatedModel struct {
	model    []byte
	mu       sync.Mutex
	failures int
	gate     chan struct{} // closed: serve
	arrived  chan struct{} // one value per request that waits at the gate
}

func (g *gatedModel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	if g.failures > 0 {
		g.failures--
		g.mu.Unlock()
		http.Error(w, "scripted outage", http.StatusServiceUnavailable)
		return
	}
	gate := g.gate
	g.mu.Unlock()
	select {
	case g.arrived <- struct{}{}:
	default:
	}
	select {
	case <-gate:
		_, _ = w.Write(g.model)
	case <-r.Context().Done():
	}
}

// passAndHold lets the requests waiting now through and makes later ones wait at a new gate.
func (g *gatedModel) passAndHold() {
	g.mu.Lock()
	close(g.gate)
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

// release lets every request through.
func (g *gatedModel) release() {
	g.mu.Lock()
	close(g.gate)
	g.mu.Unlock()
}

// TestManagerRestartAndTrainingRetries runs the operator on the local control plane (the real
// Job controller, Pods run by the node agent) against a model server that fails twice, then
// holds each download until the test lets it through:
//
//   - training attempts 1 and 2 fail (the model URL answers 503) and are retried after their
//     backoff; attempt 3 runs, and the manager is killed (SIGKILL) and restarted while it does;
//   - the first verification runs, and the manager is killed and restarted again;
//
// and checks that the resource ends Watermarked=True and Intact=True with exactly one Job per
// training attempt (three) and one verification Job, the attempts in Warning events, and the
// status written before each kill still there.
func TestManagerRestartAndTrainingRetries(t *testing.T) {
	model, err := zoo.MNIST7()
	if err != nil {
		t.Skipf("mnist-7 is not in the module cache: %v", err)
	}
	lc := startLocalCluster(t)
	srv := &gatedModel{model: model, failures: 2, gate: make(chan struct{}), arrived: make(chan struct{}, 1)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go func() { _ = hs.Serve(l) }()
	t.Cleanup(func() { _ = hs.Close() })
	lc.startManager()

	const ns, name = "default", "mnist"
	ctx := context.Background()
	mw := &fragilev1alpha1.ModelWatermark{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: fragilev1alpha1.ModelWatermarkSpec{
			Model: fragilev1alpha1.ModelSource{
				URI:        "http://" + l.Addr().String() + "/mnist-7.onnx",
				InputRange: fragilev1alpha1.InputRange{Min: "0", Max: "255"},
			},
			Triggers:     20,
			Training:     fragilev1alpha1.TrainingSpec{MaxAttempts: 3, RetryDelaySeconds: 2},
			Verification: fragilev1alpha1.VerificationSpec{PeriodSeconds: 600},
		},
	}
	if err := lc.c.Create(ctx, mw); err != nil {
		t.Fatal(err)
	}

	// Attempts 1 and 2 fail; attempt 3 reaches the gate, and the manager dies.
	waitArrival(t, srv, 3*time.Minute, lc)
	lc.waitCond(ns, name, fragilev1alpha1.ConditionWatermarked, "Unknown", fragilev1alpha1.ReasonTrainingInProgress, time.Minute)
	before := lc.mw(ns, name).Status
	if before.Training == nil || before.Training.Attempt != 3 {
		t.Fatalf("status.training %+v while the third attempt runs", before.Training)
	}
	lc.killManager()
	lc.startManager()
	time.Sleep(5 * time.Second) // the restarted manager has synced and reconciled by now
	if got := jobNames(lc.jobs(ns, name, "training")); len(got) != 3 {
		t.Fatalf("training Jobs after the restart: %v, want one per attempt", got)
	}
	if st := lc.mw(ns, name).Status; st.Training == nil || st.Training.JobName != before.Training.JobName || st.Training.Attempt != 3 {
		t.Errorf("status.training after the restart %+v, before %+v", st.Training, before.Training)
	}

	// Training completes; the first verification reaches the gate, and the manager dies again.
	srv.passAndHold()
	lc.waitCond(ns, name, fragilev1alpha1.ConditionWatermarked, "True", fragilev1alpha1.ReasonWatermarked, 5*time.Minute)
	waitArrival(t, srv, 2*time.Minute, lc)
	lc.killManager()
	lc.startManager()
	time.Sleep(5 * time.Second)
	if got := jobNames(lc.jobs(ns, name, "verification")); len(got) != 1 {
		t.Fatalf("verification Jobs after the restart: %v, want one", got)
	}
	srv.release()
	lc.waitCond(ns, name, fragilev1alpha1.ConditionIntact, "True", fragilev1alpha1.ReasonIntact, 3*time.Minute)
	lc.waitCond(ns, name, fragilev1alpha1.ConditionReady, "True", fragilev1alpha1.ReasonReady, time.Minute)

	if got := jobNames(lc.jobs(ns, name, "training")); len(got) != 3 {
		t.Errorf("training Jobs at the end: %v, want three", got)
	}
	if got := jobNames(lc.jobs(ns, name, "verification")); len(got) != 1 {
		t.Errorf("verification Jobs at the end: %v, want one", got)
	}

	var events eventsv1.EventList
	if err := lc.c.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var notes []string
	for _, e := range events.Items {
		if e.Regarding.Name != name || e.Regarding.Kind != "ModelWatermark" {
			continue
		}
		notes = append(notes, e.Type+" "+e.Reason+": "+e.Note)
		for _, a := range []string{"attempt 1 of 3", "attempt 2 of 3"} {
			if e.Type == corev1.EventTypeWarning && e.Reason == fragilev1alpha1.ReasonTrainingBackoff &&
				strings.Contains(e.Note, a) && strings.Contains(e.Note, "503") {
				seen[a] = true
			}
		}
	}
	if len(seen) != 2 {
		t.Errorf("events lack a TrainingBackoff warning for each failed attempt:\n%s", strings.Join(notes, "\n"))
	}
}

// waitArrival waits until a request is held at the gate.
func waitArrival(t *testing.T, g *gatedModel, timeout time.Duration, lc *localCluster) {
	t.Helper()
	select {
	case <-g.arrived:
	case <-time.After(timeout):
		t.Fatalf("no Job downloaded the model within %s\nmanager log:\n%s", timeout, lc.managerLog())
	}
}
