package controllers

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/metrics"
)

// DefaultJobImage is the image of the training and verification Jobs when the manager is not
// told otherwise: the operator's own image, which contains the one `fragile` binary.
const DefaultJobImage = "ghcr.io/fragile-operator/fragile:dev"

// verificationHistoryLimit is how many finished verification Jobs of the current watermark are
// kept besides the newest one that reached a verdict (kept in any case: status is rebuilt from
// Jobs, and a tampering verdict must survive later failed runs).
const verificationHistoryLimit = 3

// keySecretRetry is how often a missing spec.keySecretRef Secret is looked for again: the
// operator does not watch Secrets it does not own.
const keySecretRetry = time.Minute

// jobOwnerKey indexes Jobs by the name of the ModelWatermark that controls them, and podJobKey
// Pods by the name of their Job, so that a reconcile reads its own children without scanning
// the namespace.
const (
	jobOwnerKey = ".metadata.controller"
	podJobKey   = ".metadata.labels.job-name"
)

// ModelWatermarkReconciler watermarks a model once per spec and verifies it on a schedule.
// Model files are only ever parsed inside Jobs, never in the manager.
type ModelWatermarkReconciler struct {
	// Client reads from the manager's cache, which holds only objects the operator labelled.
	client.Client
	// APIReader reads the user's key Secret (metadata only), which the cache does not hold.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	// Recorder emits events on condition transitions only.
	Recorder events.EventRecorder
	// Clock decides when verifications are due; tests inject a fake one.
	Clock clock.PassiveClock
	// JobImage is the image training and verification Jobs run.
	JobImage string
	// Rand is the source of generated keys; nil means crypto/rand.
	Rand io.Reader
	// MaxConcurrentReconciles is how many resources are reconciled at once (0: one). A
	// reconcile spends its time waiting on the API server, not computing, so one worker leaves
	// a burst of due verifications queued behind each other (BENCHMARKS.md, "Scale").
	MaxConcurrentReconciles int
}

// The manager patches ModelWatermarks only to add and remove the bundle-cleanup finalizer.
// +kubebuilder:rbac:groups=fragile.dev,resources=modelwatermarks,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=fragile.dev,resources=modelwatermarks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=fragile.dev,resources=modelwatermarks/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// The manager holds get, update and patch on Secrets because it grants exactly those (on one
// Secret) to each training Job's Role, and RBAC only lets it grant what it holds.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=create
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile counts failed reconciles per resource, then defers to reconcile.
func (r *ModelWatermarkReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	// A conflict only means another writer was first; the retry is routine, not an alert.
	if err != nil && !apierrors.IsConflict(err) {
		metrics.ReconcileError(req.Namespace, req.Name)
	}
	return res, err
}

func (r *ModelWatermarkReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)

	// 1. Load the ModelWatermark. A deleted one takes its Jobs and Secrets with it through
	// owner references; only its metric series are left to forget. One being deleted whose
	// bundle is on a PVC or in S3 first has its bundle reclaimed (cleanup.go); it carries that
	// finalizer from before its first training Job.
	var mw fragilev1alpha1.ModelWatermark
	if err := r.Get(ctx, req.NamespacedName, &mw); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.Forget(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !mw.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &mw)
	}
	if err := r.ensureFinalizer(ctx, &mw); err != nil {
		return ctrl.Result{}, err
	}

	o := &observation{mw: &mw, now: r.Clock.Now(), hash: watermarkHash(&mw)}
	loc, err := locateModel(mw.Spec.Model)
	if err != nil {
		o.rejected = err.Error()
	}

	// 2. Observe the bundle Secret, metadata only: the manager never needs the bundle's bytes.
	if o.bundle, err = r.secretMeta(ctx, r.Client, mw.Namespace, bundleSecretName(&mw)); err != nil {
		return ctrl.Result{}, err
	}

	// 3. Make sure there is a key. A generated key is created once; if it disappears after a
	// bundle was sealed with it, a new key would silently re-watermark a model that may have been
	// tampered with meanwhile, so that case is reported instead (KeySecretNotFound).
	if err := r.observeKey(ctx, &mw, o); err != nil {
		return ctrl.Result{}, err
	}

	// 4. List the Jobs this resource controls and read the reports of finished ones.
	var jobs batchv1.JobList
	if err := r.List(ctx, &jobs, client.InNamespace(mw.Namespace), client.MatchingFields{jobOwnerKey: mw.Name}); err != nil {
		return ctrl.Result{}, err
	}
	var stale []*batchv1.Job
	for i := range jobs.Items {
		job := &jobs.Items[i]
		if job.Labels[fragilev1alpha1.LabelWatermarkHash] != o.hash {
			stale = append(stale, job)
			continue
		}
		run, err := r.observeJob(ctx, o, job)
		if err != nil {
			return ctrl.Result{}, err
		}
		switch job.Labels[labelComponent] {
		case componentTraining:
			// Earlier attempts stay as the record of what failed; the newest one decides.
			if o.training != nil && attemptOf(o.training.job) > attemptOf(job) {
				continue
			}
			o.training, o.result = &run, nil
			if run.finished {
				t := interpretTraining(run, mw.Spec.Triggers)
				o.result = &t
			}
		case componentVerification:
			if !run.finished {
				if o.activeVerification == nil || newerJob(job, o.activeVerification) {
					o.activeVerification = job
				}
				continue
			}
			o.verdicts = append(o.verdicts, interpretVerification(run))
		}
	}
	sort.Slice(o.verdicts, func(i, j int) bool { return newerJob(o.verdicts[i].run.job, o.verdicts[j].run.job) })

	// 5. Prune: Jobs of a superseded watermark (a superseded training Job must not keep writing
	// the bundle Secret), and finished verifications beyond the history limit.
	var conclusiveJob *batchv1.Job
	if v := o.newestConclusive(); v != nil {
		conclusiveJob = v.run.job
	}
	keep := make([]verdict, 0, len(o.verdicts))
	var prune []*batchv1.Job
	for i, v := range o.verdicts {
		if i < verificationHistoryLimit || v.run.job == conclusiveJob {
			keep = append(keep, v)
			continue
		}
		prune = append(prune, v.run.job)
	}
	o.verdicts = keep
	for _, job := range append(stale, prune...) {
		if err := r.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
		log.V(1).Info("deleted Job", "job", job.Name)
	}

	// 6. Start training when the current watermark has none, or retry a failed attempt once its
	// backoff has passed. A newly generated key is created with training's other prerequisites,
	// or on its own when training need not start.
	var requeue time.Duration
	started := false
	attempt, due := o.nextTrainingAttempt()
	if attempt > 1 {
		o.nextAttempt = due
	}
	if attempt > 0 && !mw.Spec.Suspend && !o.keyMissing && o.rejected == "" {
		if o.now.Before(due) {
			requeue = due.Sub(o.now)
		} else {
			if err := r.startTraining(ctx, &mw, o, loc, attempt); err != nil {
				return ctrl.Result{}, err
			}
			started, o.nextAttempt = true, time.Time{}
		}
	}
	if o.newKey != nil && !started {
		if err := r.createKey(ctx, &mw, o.newKey); err != nil {
			return ctrl.Result{}, err
		}
	}

	// 7. Once watermarked, start a verification when one is due. Verifications are scheduled
	// from the previous one's slot, the first from the end of training.
	o.watermarked = watermarkedChain.evaluate(fragilev1alpha1.ConditionWatermarked, o)
	if mw.Spec.Endpoint != nil && o.watermarked.Status == condTrue {
		if o.endpoint, o.endpointProblem, err = r.resolveEndpoint(ctx, &mw); err != nil {
			return ctrl.Result{}, err
		}
	}
	if o.watermarked.Status == condTrue && !mw.Spec.Suspend && o.endpointProblem == "" {
		plan := planVerification(verificationPeriod(mw.Spec.Verification), o.training.finishedAt, o.lastScheduled(),
			o.activeVerification != nil, o.now)
		if !plan.start.IsZero() {
			job := verificationJob(&mw, r.JobImage, o.hash, loc, o.endpoint, plan.start, o.sealedDigest())
			if err := r.createOwned(ctx, &mw, job); err != nil && !apierrors.IsAlreadyExists(err) {
				return ctrl.Result{}, fmt.Errorf("creating verification Job %s: %w", job.Name, err)
			}
			log.V(1).Info("started verification", "job", job.Name)
			o.activeVerification = job
		}
		o.nextVerification = plan.next
		if o.activeVerification == nil {
			requeue = plan.next.Sub(o.now)
		}
	}
	if o.keyMissing && !o.keyGenerated {
		requeue = keySecretRetry
	}
	if o.endpointProblem != "" {
		requeue = endpointRetry
	}

	// 8. Rebuild status from the observation; write it, and announce transitions, only when it
	// changed.
	// Report copies go out in the same round trip: nothing in the status depends on them.
	status := buildStatus(o, mw.Status.Conditions)
	reportMetrics(o, status)
	changed := !apiequality.Semantic.DeepEqual(mw.Status, status)
	previous := mw.Status.Conditions
	var g errgroup.Group
	for _, write := range o.sideWrites {
		g.Go(func() error { return write(ctx) })
	}
	var statusErr error
	if changed {
		mw.Status = status
		g.Go(func() error { statusErr = r.Status().Update(ctx, &mw); return statusErr })
	}
	err = g.Wait()
	// Announce once the new status is stored, even if a side write failed: the retry will find
	// the status unchanged and would not announce again.
	if changed && statusErr == nil {
		r.announce(&mw, o, previous, status.Conditions)
	}
	if err != nil {
		return ctrl.Result{}, err
	}

	// 9. Come back when the next verification is due; Job and Pod changes wake us earlier.
	if requeue > 0 {
		return ctrl.Result{RequeueAfter: requeue}, nil
	}
	return ctrl.Result{}, nil
}

// lastScheduled is the newest schedule slot filled by a verification Job of the current
// watermark, running or finished; zero when there is none.
func (o *observation) lastScheduled() time.Time {
	var last time.Time
	consider := func(j *batchv1.Job) {
		if t, ok := scheduledTime(j); ok && t.After(last) {
			last = t
		}
	}
	if o.activeVerification != nil {
		consider(o.activeVerification)
	}
	for _, v := range o.verdicts {
		consider(v.run.job)
	}
	return last
}

// newerJob orders verification Jobs by schedule slot, then by creation.
func newerJob(a, b *batchv1.Job) bool {
	ta, oka := scheduledTime(a)
	tb, okb := scheduledTime(b)
	if oka && okb && !ta.Equal(tb) {
		return ta.After(tb)
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return a.Name > b.Name
}

// secretMeta reads a Secret's metadata, or nil when it does not exist.
func (r *ModelWatermarkReconciler) secretMeta(ctx context.Context, c client.Reader, ns, name string) (*metav1.PartialObjectMetadata, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, m); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return m, nil
}

// observeKey finds the key Secret, generating it when the resource owns it and no bundle was
// sealed with a previous one.
func (r *ModelWatermarkReconciler) observeKey(ctx context.Context, mw *fragilev1alpha1.ModelWatermark, o *observation) error {
	name, _, generated := keyRef(mw)
	o.keyName, o.keyGenerated = name, generated
	if !generated {
		m, err := r.secretMeta(ctx, r.APIReader, mw.Namespace, name)
		o.keyMissing = m == nil
		return err
	}
	m, err := r.secretMeta(ctx, r.Client, mw.Namespace, name)
	if err != nil || m != nil {
		return err
	}
	if o.bundleSealed() {
		o.keyMissing = true
		return nil
	}
	key, err := newKey(r.Rand)
	if err != nil {
		return err
	}
	// Created by step 6, alongside the training Job's other prerequisites.
	o.newKey = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: mw.Namespace, Labels: ownedLabels(mw, componentKey)},
		Type:       corev1.SecretTypeOpaque,
		// Immutable: a key edited in place would make every later verification fail, and the
		// kubelet need not watch an immutable Secret.
		Immutable: ptr.To(true),
		Data:      map[string][]byte{contract.KeyDataKey: key},
	}
	return nil
}

// createKey creates a generated key Secret. The error names the Secret, never its content.
func (r *ModelWatermarkReconciler) createKey(ctx context.Context, mw *fragilev1alpha1.ModelWatermark, secret *corev1.Secret) error {
	if err := r.createOwned(ctx, mw, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating key Secret %s: %w", secret.Name, err)
	}
	return nil
}

// newKey returns a fresh key of random bytes in the key file format (contract.FormatKey),
// then a newline, as `fragile keygen` writes it.
func newKey(src io.Reader) ([]byte, error) {
	if src == nil {
		src = rand.Reader
	}
	var raw [contract.KeySize]byte
	if _, err := io.ReadFull(src, raw[:]); err != nil {
		return nil, errors.New("reading random bytes for a key failed")
	}
	return append(contract.FormatKey(raw), '\n'), nil
}

// startTraining gives the training Job what it needs (a ServiceAccount allowed to write the one
// bundle Secret, and that Secret reserved for this watermark) and creates the Job.
func (r *ModelWatermarkReconciler) startTraining(ctx context.Context, mw *fragilev1alpha1.ModelWatermark, o *observation, loc modelLocation, attempt int32) error {
	// The key (when generated now), bundle Secret, ServiceAccount and Role are independent
	// writes, issued together to save
	// round trips on the slowest reconcile a resource has. The RoleBinding must wait for the
	// Role: the API server only lets the manager bind a Role whose rules it can see it holds.
	sa, role, binding := trainerRBAC(mw)
	create := func(ctx context.Context, obj client.Object) error {
		if err := r.createOwned(ctx, mw, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
		}
		return nil
	}
	var g errgroup.Group
	if o.newKey != nil {
		g.Go(func() error { return r.createKey(ctx, mw, o.newKey) })
	}
	g.Go(func() error { return r.reserveBundleSecret(ctx, mw, o) })
	g.Go(func() error { return create(ctx, sa) })
	g.Go(func() error { return create(ctx, role) })
	if err := g.Wait(); err != nil {
		return err
	}
	if err := create(ctx, binding); err != nil {
		return err
	}
	job := trainingJob(mw, r.JobImage, o.hash, loc, attempt)
	switch err := r.createOwned(ctx, mw, job); {
	case err == nil, apierrors.IsAlreadyExists(err):
		o.training, o.result = &jobRun{job: job}, nil
	case apierrors.IsInvalid(err):
		// The spec produced a Job the API server refuses (say, a bad volume). Retrying cannot
		// help until the spec changes, which triggers a new reconcile.
		o.rejected = fmt.Sprintf("the API server rejected training Job %s: %v", job.Name, err)
	default:
		return fmt.Errorf("creating training Job %s: %w", job.Name, err)
	}
	return nil
}

// trainerRBAC is the training Job's ServiceAccount, Role and RoleBinding. The Role allows get,
// patch and update of the bundle Secret only: RBAC resourceNames cannot restrict create, which
// is why the operator creates that Secret itself. The objects are created, never read, so the
// manager needs no cache of ServiceAccounts or Roles.
func trainerRBAC(mw *fragilev1alpha1.ModelWatermark) (*corev1.ServiceAccount, *rbacv1.Role, *rbacv1.RoleBinding) {
	name := trainerName(mw)
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: mw.Namespace, Labels: ownedLabels(mw, componentTraining)}
	}
	return &corev1.ServiceAccount{ObjectMeta: meta()},
		&rbacv1.Role{ObjectMeta: meta(), Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{""},
			Resources:     []string{"secrets"},
			ResourceNames: []string{bundleSecretName(mw)},
			Verbs:         []string{"get", "patch", "update"},
		}}},
		&rbacv1.RoleBinding{
			ObjectMeta: meta(),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: mw.Namespace}},
		}
}

// reserveBundleSecret makes the bundle Secret exist, empty, and reserved for the current
// watermark hash, before a training Job starts writing to it.
func (r *ModelWatermarkReconciler) reserveBundleSecret(ctx context.Context, mw *fragilev1alpha1.ModelWatermark, o *observation) error {
	name := bundleSecretName(mw)
	if o.bundle == nil {
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: mw.Namespace, Labels: ownedLabels(mw, componentBundle),
				Annotations: map[string]string{contract.AnnotationWatermarkHash: o.hash},
			},
			Type: corev1.SecretTypeOpaque,
		}
		err := r.createOwned(ctx, mw, secret)
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating bundle Secret %s: %w", name, err)
		}
	} else if a := o.bundle.Annotations; a[contract.AnnotationWatermarkHash] == o.hash &&
		a[contract.AnnotationBundleDigest] == "" && a[contract.AnnotationTrainingProgress] == "" {
		return nil
	}
	// A merge patch clears the old bundle without the manager ever reading it.
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{
			contract.AnnotationWatermarkHash:    o.hash,
			contract.AnnotationBundleDigest:     nil,
			contract.AnnotationTrainingProgress: nil,
		}},
		"data": nil,
	})
	if err != nil {
		return err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: mw.Namespace}}
	if err := r.Patch(ctx, secret, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("resetting bundle Secret %s: %w", name, err)
	}
	return nil
}

// createOwned creates obj with mw as its controller, so that it is garbage collected with mw
// and its changes wake mw's reconcile.
func (r *ModelWatermarkReconciler) createOwned(ctx context.Context, mw *fragilev1alpha1.ModelWatermark, obj client.Object) error {
	if err := controllerutil.SetControllerReference(mw, obj, r.Scheme); err != nil {
		return err
	}
	return r.Create(ctx, obj)
}

// reportMetrics exports the observation for alerting.
func reportMetrics(o *observation, st fragilev1alpha1.ModelWatermarkStatus) {
	m := metrics.Observation{IntactStatus: string(condUnknown), PeriodSeconds: o.mw.Spec.Verification.PeriodSeconds}
	for _, c := range st.Conditions {
		if c.Type == fragilev1alpha1.ConditionIntact {
			m.IntactStatus = string(c.Status)
		}
	}
	if v := o.newestConclusive(); v != nil {
		m.HasVerdict = true
		m.LastVerdictUnix = float64(v.run.finishedAt.Unix())
		m.Mismatched = v.mismatched
	}
	metrics.Report(o.mw.Namespace, o.mw.Name, m)
}

// announce emits one event per condition transition (a new status or reason). Pending and
// in-between states stay quiet; the Ready condition only speaks for its own reasons.
func (r *ModelWatermarkReconciler) announce(mw *fragilev1alpha1.ModelWatermark, o *observation, previous, current []metav1.Condition) {
	if r.Recorder == nil {
		return
	}
	find := func(cs []metav1.Condition, t string) *metav1.Condition {
		for i := range cs {
			if cs[i].Type == t {
				return &cs[i]
			}
		}
		return nil
	}
	for _, c := range current {
		if p := find(previous, c.Type); p != nil && p.Status == c.Status && p.Reason == c.Reason {
			continue
		}
		kind, action, ok := eventFor(c)
		if !ok || (c.Type == fragilev1alpha1.ConditionReady && borrowed(c, current)) {
			continue
		}
		var related runtime.Object
		switch {
		case c.Type == fragilev1alpha1.ConditionWatermarked && o.training != nil:
			related = o.training.job
		case len(o.verdicts) > 0 && c.Type != fragilev1alpha1.ConditionWatermarked:
			related = o.verdicts[0].run.job
		}
		r.Recorder.Eventf(mw, related, kind, c.Reason, action, "%s", clip(c.Message))
	}
}

// borrowed reports whether Ready took its reason from another condition, whose own event
// already tells the story.
func borrowed(ready metav1.Condition, current []metav1.Condition) bool {
	for _, c := range current {
		if c.Type != ready.Type && c.Reason == ready.Reason {
			return true
		}
	}
	return false
}

// eventFor says whether a condition state is worth an event, of which type, for which action.
func eventFor(c metav1.Condition) (eventType, action string, ok bool) {
	switch c.Type {
	case fragilev1alpha1.ConditionWatermarked:
		switch c.Reason {
		case fragilev1alpha1.ReasonTrainingInProgress, fragilev1alpha1.ReasonWatermarked:
			return corev1.EventTypeNormal, "Watermark", true
		case fragilev1alpha1.ReasonTrainingPending, fragilev1alpha1.ReasonSuspended:
			return "", "", false
		}
		return corev1.EventTypeWarning, "Watermark", true
	case fragilev1alpha1.ConditionIntact:
		switch c.Reason {
		case fragilev1alpha1.ReasonIntact:
			return corev1.EventTypeNormal, "Verify", true
		case fragilev1alpha1.ReasonTamperDetected, fragilev1alpha1.ReasonVerificationFailed,
			fragilev1alpha1.ReasonStorageUnreachable, fragilev1alpha1.ReasonStorageAccessDenied,
			fragilev1alpha1.ReasonBundleNotFound, fragilev1alpha1.ReasonBundleDigestMismatch:
			return corev1.EventTypeWarning, "Verify", true
		}
	case fragilev1alpha1.ConditionReady:
		if c.Reason == fragilev1alpha1.ReasonDigestMismatch && c.Status == condFalse {
			return corev1.EventTypeWarning, "Verify", true
		}
	}
	return "", "", false
}

// SetupWithManager registers the controller, and the Job owner index it lists children with.
func (r *ModelWatermarkReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &batchv1.Job{}, jobOwnerKey, indexJobOwner); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, podJobKey, indexPodJob); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&fragilev1alpha1.ModelWatermark{}).
		Owns(&batchv1.Job{}).
		// Secrets are watched as metadata: the bundle Secret's progress annotation updates the
		// status while training runs, and no Secret data enters the manager's memory.
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		// A Pod's termination message can land in the cache after its Job turned Complete.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podToModelWatermark)).
		// The cleanup Job is not owned (cleanup.go says why); its label names the resource.
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(cleanupJobToModelWatermark)).
		Named("modelwatermark").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Complete(r)
}

// indexJobOwner is the field index function for jobOwnerKey.
func indexJobOwner(obj client.Object) []string {
	owner := metav1.GetControllerOf(obj)
	if owner == nil || owner.APIVersion != fragilev1alpha1.GroupVersion.String() || owner.Kind != "ModelWatermark" {
		return nil
	}
	return []string{owner.Name}
}

// indexPodJob is the field index function for podJobKey.
func indexPodJob(obj client.Object) []string {
	if name := obj.GetLabels()[jobNameLabel]; name != "" {
		return []string{name}
	}
	return nil
}

// podToModelWatermark maps a Job's Pod to the ModelWatermark named in its labels.
func podToModelWatermark(_ context.Context, obj client.Object) []reconcile.Request {
	name := obj.GetLabels()[fragilev1alpha1.LabelModelWatermark]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: name}}}
}
