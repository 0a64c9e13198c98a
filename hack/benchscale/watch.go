package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
)

// Labels and annotations the operator puts on its Jobs (controllers/names.go).
const (
	labelComponent          = "app.kubernetes.io/component"
	annotationScheduledTime = "fragile.dev/scheduled-time"
	componentTraining       = "training"
	componentVerification   = "verification"
)

// jobRecord is what the benchmark remembers of one Job, also after the controller pruned it.
type jobRecord struct {
	component string
	mw        string
	slot      time.Time // verification Jobs: the schedule slot it fills
	created   time.Time
	finished  time.Time // zero while running
	failed    bool
}

// jobWatch records every Job of the benchmark's namespace through an informer, and counts the
// Jobs and Pods that exist.
type jobWatch struct {
	mu      sync.Mutex
	jobs    map[string]*jobRecord // by name
	byMW    map[string]map[int64]*jobRecord
	jobsInf cache.SharedIndexInformer
	podsInf cache.SharedIndexInformer
}

func newJobWatch() *jobWatch {
	return &jobWatch{jobs: map[string]*jobRecord{}, byMW: map[string]map[int64]*jobRecord{}}
}

func (w *jobWatch) start(ctx context.Context, cs kubernetes.Interface) error {
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace))
	w.jobsInf = f.Batch().V1().Jobs().Informer()
	w.podsInf = f.Core().V1().Pods().Informer()
	// Keep only what is counted or recorded: the driver's memory is not the manager's, but it
	// shares the machine.
	if err := w.jobsInf.SetTransform(func(obj any) (any, error) {
		if j, ok := obj.(*batchv1.Job); ok {
			j.ManagedFields = nil
			j.Spec.Template = corev1.PodTemplateSpec{}
		}
		return obj, nil
	}); err != nil {
		return err
	}
	if err := w.podsInf.SetTransform(func(obj any) (any, error) {
		if p, ok := obj.(*corev1.Pod); ok {
			p.ManagedFields, p.Spec, p.Status = nil, corev1.PodSpec{}, corev1.PodStatus{Phase: p.Status.Phase}
		}
		return obj, nil
	}); err != nil {
		return err
	}
	if _, err := w.jobsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.observe,
		UpdateFunc: func(_, obj any) { w.observe(obj) },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), w.jobsInf.HasSynced, w.podsInf.HasSynced) {
		return fmt.Errorf("the Job and Pod informers did not sync")
	}
	return nil
}

func (w *jobWatch) observe(obj any) {
	j, ok := obj.(*batchv1.Job)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.jobs[j.Name]
	if r == nil {
		r = &jobRecord{component: j.Labels[labelComponent], mw: j.Labels[fragilev1alpha1.LabelModelWatermark],
			created: j.CreationTimestamp.Time}
		if t, err := time.Parse(time.RFC3339, j.Annotations[annotationScheduledTime]); err == nil {
			r.slot = t
		}
		w.jobs[j.Name] = r
		if r.component == componentVerification && !r.slot.IsZero() {
			if w.byMW[r.mw] == nil {
				w.byMW[r.mw] = map[int64]*jobRecord{}
			}
			w.byMW[r.mw][r.slot.Unix()] = r
		}
	}
	if !r.finished.IsZero() {
		return
	}
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			r.finished = c.LastTransitionTime.Time
			if j.Status.CompletionTime != nil {
				r.finished = j.Status.CompletionTime.Time
			}
		case batchv1.JobFailed:
			r.finished, r.failed = c.LastTransitionTime.Time, true
		}
	}
}

// scheduleResult is how the periodic slots went.
type scheduleResult struct {
	slots, missed, skipped int
	// startLate and finishLate are, per slot with a Job, how long after the slot the Job was
	// created and finished (seconds).
	startLate, finishLate []float64
}

// schedule judges every slot of every resource after its first verification (first[mw]) up
// to end: a slot is met when a verification Job for it finished by slot + period + slack, and
// missed when none did (skipped: there never was one); a slot whose Job has not finished and
// whose deadline is after end is not judged yet.
func (w *jobWatch) schedule(first map[string]time.Time, period, slack time.Duration, end time.Time) scheduleResult {
	var res scheduleResult
	for mw, s0 := range first {
		for k := 1; ; k++ {
			slot := s0.Add(time.Duration(k) * period)
			deadline := slot.Add(period + slack)
			r := w.slot(mw, slot)
			finished := r != nil && !r.finished.IsZero()
			if slot.After(end) || (!finished && deadline.After(end)) {
				break
			}
			res.slots++
			if r == nil {
				res.skipped++
				res.missed++
				continue
			}
			res.startLate = append(res.startLate, r.created.Sub(slot).Seconds())
			if !finished {
				res.missed++
				continue
			}
			if r.finished.After(deadline) {
				res.missed++
			}
			res.finishLate = append(res.finishLate, r.finished.Sub(slot).Seconds())
		}
	}
	return res
}

// firstSlots is each resource's earliest verification slot.
func (w *jobWatch) firstSlots() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]time.Time{}
	for mw, slots := range w.byMW {
		for _, r := range slots {
			if s, ok := out[mw]; !ok || r.slot.Before(s) {
				out[mw] = r.slot
			}
		}
	}
	return out
}

// slot is the verification Job of mw for slot, or nil.
func (w *jobWatch) slot(mw string, slot time.Time) *jobRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.byMW[mw][slot.Unix()]
	if r == nil {
		return nil
	}
	c := *r
	return &c
}

func (w *jobWatch) finishedSlot(mw string, slot time.Time) bool {
	r := w.slot(mw, slot)
	return r != nil && !r.finished.IsZero()
}

func (w *jobWatch) each(component string, f func(*jobRecord)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.jobs {
		if r.component == component {
			f(r)
		}
	}
}

func (w *jobWatch) created(component string) int {
	n := 0
	w.each(component, func(*jobRecord) { n++ })
	return n
}

func (w *jobWatch) createdBetween(component string, from, to time.Time) int {
	n := 0
	w.each(component, func(r *jobRecord) {
		if !r.created.Before(from) && r.created.Before(to) {
			n++
		}
	})
	return n
}

func (w *jobWatch) finishedBetween(component string, from, to time.Time) int {
	n := 0
	w.each(component, func(r *jobRecord) {
		if !r.finished.IsZero() && !r.finished.Before(from) && r.finished.Before(to) {
			n++
		}
	})
	return n
}

func (w *jobWatch) outcomes(component string) (complete, failed int) {
	w.each(component, func(r *jobRecord) {
		switch {
		case r.finished.IsZero():
		case r.failed:
			failed++
		default:
			complete++
		}
	})
	return complete, failed
}

// peakRate is the most Jobs of component created within any window, per second. Creation
// times have a resolution of one second.
func (w *jobWatch) peakRate(component string, window time.Duration) float64 {
	var ts []time.Time
	w.each(component, func(r *jobRecord) { ts = append(ts, r.created) })
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= window {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return float64(best) / window.Seconds()
}

// spanRate is the Jobs of component created per second between the first and the last.
func (w *jobWatch) spanRate(component string) float64 {
	var first, last time.Time
	n := 0
	w.each(component, func(r *jobRecord) {
		n++
		if first.IsZero() || r.created.Before(first) {
			first = r.created
		}
		if r.created.After(last) {
			last = r.created
		}
	})
	if n < 2 || !last.After(first) {
		return 0
	}
	return float64(n-1) / last.Sub(first).Seconds()
}

// countSampler samples how many Jobs and Pods exist and how many requests wait in the
// manager's work queue.
type countSampler struct {
	w                *jobWatch
	queue            func() float64
	mu               sync.Mutex
	maxJobs, maxPods int
	maxQ             float64
	done             chan struct{}
	stopOnce         sync.Once
}

func newCountSampler(w *jobWatch, queue func() float64) *countSampler {
	return &countSampler{w: w, queue: queue, done: make(chan struct{})}
}

func (s *countSampler) maxQueue() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxQ
}

func (s *countSampler) now() (jobs, pods int) {
	return len(s.w.jobsInf.GetStore().ListKeys()), len(s.w.podsInf.GetStore().ListKeys())
}

func (s *countSampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		jobs, pods := s.now()
		q := s.queue()
		s.mu.Lock()
		s.maxJobs, s.maxPods, s.maxQ = max(s.maxJobs, jobs), max(s.maxPods, pods), max(s.maxQ, q)
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-t.C:
		}
	}
}

func (s *countSampler) stop() { s.stopOnce.Do(func() { close(s.done) }) }

func (s *countSampler) max() (jobs, pods int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxJobs, s.maxPods
}

// apiserverRequests reads apiserver_request_total from the API server's /metrics and sums it
// by verb and resource.
func apiserverRequests(ctx context.Context, cs kubernetes.Interface) (map[string]float64, error) {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's /metrics: %w", err)
	}
	out := map[string]float64{}
	dec := expfmt.NewDecoder(bytes.NewReader(raw), expfmt.NewFormat(expfmt.TypeTextPlain))
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		if mf.GetName() != "apiserver_request_total" {
			continue
		}
		for _, m := range mf.Metric {
			var verb, resource, sub string
			for _, l := range m.Label {
				switch l.GetName() {
				case "verb":
					verb = l.GetValue()
				case "resource":
					resource = l.GetValue()
				case "subresource":
					sub = l.GetValue()
				}
			}
			if resource == "" {
				resource = "(non-resource)"
			}
			if sub != "" {
				resource += "/" + sub
			}
			out[verb+" "+resource] += m.GetCounter().GetValue()
		}
	}
	return out, nil
}
