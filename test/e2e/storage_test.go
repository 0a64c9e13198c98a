package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/internal/s3test"
	"github.com/fragile-operator/fragile-operator/internal/zoo"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/attack"
	"github.com/fragile-operator/fragile-operator/pkg/storage"
)

// bigTriggers makes mnist-7's sealed bundle larger than a Secret can hold: 400 triggers of
// 1x28x28 float32 are 1.25 MB.
const bigTriggers = 400

// TestBundleStorage runs the operator on the local control plane with a real S3 server
// (versitygw on loopback, TLS from a private CA in the credentials Secret):
//
//   - "s3": model and a bundle over 1 MiB in S3 -> Watermarked=True, Intact=True; then, one
//     verification period each, wrong credentials (StorageAccessDenied), an unreachable endpoint
//     (StorageUnreachable), the bundle deleted (BundleNotFound), the bundle replaced
//     (BundleDigestMismatch), all Intact=Unknown; finally the model object in S3 replaced by a
//     tampered copy -> Intact=False TamperDetected;
//   - "pvc": a bundle over 1 MiB on a PersistentVolumeClaim -> Watermarked=True, Intact=True;
//   - both deleted: their cleanup Jobs delete the object from the bucket and the file from the
//     claim (reclaimPolicy Delete, the default), and the model stays.
func TestBundleStorage(t *testing.T) {
	model, err := zoo.MNIST7()
	if err != nil {
		t.Skipf("mnist-7 is not in the module cache: %v", err)
	}
	srv := s3test.Start(t)
	lc := startLocalCluster(t)
	srv.MakeBucket(t, "models")
	srv.MakeBucket(t, "bundles")
	ctx := context.Background()
	cfg := srv.Config()
	modelObj := storage.S3Object{Bucket: "models", Key: "mnist/mnist-7.onnx"}
	bundleObj := storage.S3Object{Bucket: "bundles", Key: "default/s3/bundle"}
	if err := storage.Put(ctx, cfg, modelObj, model); err != nil {
		t.Fatal(err)
	}
	const ns = "default"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-credentials", Namespace: ns}, Data: srv.SecretData()}
	if err := lc.c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	lc.startManager()

	spec := func(uri string, bundle *fragilev1alpha1.BundleStorage) fragilev1alpha1.ModelWatermarkSpec {
		return fragilev1alpha1.ModelWatermarkSpec{
			Model:        fragilev1alpha1.ModelSource{URI: uri, InputRange: fragilev1alpha1.InputRange{Min: "0", Max: "255"}},
			Triggers:     bigTriggers,
			Bundle:       bundle,
			Training:     fragilev1alpha1.TrainingSpec{MaxAttempts: 1, TimeoutSeconds: 1800},
			Verification: fragilev1alpha1.VerificationSpec{PeriodSeconds: 60, TimeoutSeconds: 600},
		}
	}
	s3mw := &fragilev1alpha1.ModelWatermark{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: ns},
		Spec: spec(modelObj.String(), &fragilev1alpha1.BundleStorage{URI: bundleObj.String(),
			S3: &fragilev1alpha1.S3Access{SecretName: secret.Name}})}
	s3mw.Spec.Model.S3 = &fragilev1alpha1.S3Access{SecretName: secret.Name}
	// The PVC resource reads its model from S3 too, so both share the one download path.
	pvcmw := &fragilev1alpha1.ModelWatermark{ObjectMeta: metav1.ObjectMeta{Name: "pvc", Namespace: ns},
		Spec: spec(modelObj.String(), &fragilev1alpha1.BundleStorage{URI: "pvc://bundles/default/pvc.bundle"})}
	pvcmw.Spec.Model.S3 = &fragilev1alpha1.S3Access{SecretName: secret.Name}
	for _, mw := range []*fragilev1alpha1.ModelWatermark{s3mw, pvcmw} {
		if err := lc.c.Create(ctx, mw); err != nil {
			t.Fatal(err)
		}
	}

	// Both train (400 triggers: minutes on a loaded 2-core machine) and verify intact.
	for _, name := range []string{"s3", "pvc"} {
		lc.waitCond(ns, name, fragilev1alpha1.ConditionWatermarked, "True", fragilev1alpha1.ReasonWatermarked, 20*time.Minute)
		lc.waitCond(ns, name, fragilev1alpha1.ConditionIntact, "True", fragilev1alpha1.ReasonIntact, 5*time.Minute)
		st := lc.mw(ns, name).Status
		if st.Bundle == nil || st.Bundle.SizeBytes <= 1<<20 || !strings.HasPrefix(st.Bundle.Digest, "sha256:") || st.Bundle.SecretName != "" {
			t.Errorf("%s: status.bundle %+v, want a digest and more than 1 MiB off-Secret", name, st.Bundle)
		}
	}
	if got := lc.mw(ns, "s3").Status.Bundle.URI; got != bundleObj.String() {
		t.Errorf("s3: status.bundle.uri %q", got)
	}
	onPVC, err := os.ReadFile(filepath.Join(lc.dir, "cluster", "pvc", "bundles", "default", "pvc.bundle"))
	if err != nil || int64(len(onPVC)) != lc.mw(ns, "pvc").Status.Bundle.SizeBytes {
		t.Errorf("the PVC does not hold the bundle: %d bytes, %v", len(onPVC), err)
	}
	sealed, err := storage.Get(ctx, cfg, bundleObj, 1<<30)
	if err != nil || int64(len(sealed)) != lc.mw(ns, "s3").Status.Bundle.SizeBytes {
		t.Fatalf("the bucket does not hold the bundle: %d bytes, %v", len(sealed), err)
	}

	// Each broken piece of storage: one verification period later, Intact=Unknown with the
	// reason that names it, and never TamperDetected; then the piece is repaired.
	editSecret := func(key, value string) {
		t.Helper()
		var s corev1.Secret
		if err := lc.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: secret.Name}, &s); err != nil {
			t.Fatal(err)
		}
		s.Data[key] = []byte(value)
		if err := lc.c.Update(ctx, &s); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		reason        string
		breakIt, mend func()
	}{
		{fragilev1alpha1.ReasonStorageAccessDenied,
			func() { editSecret(storage.KeySecretAccessKey, "not-the-secret") },
			func() { editSecret(storage.KeySecretAccessKey, srv.SecretKey) }},
		{fragilev1alpha1.ReasonStorageUnreachable,
			func() { editSecret(storage.KeyEndpoint, "https://127.0.0.1:1") },
			func() { editSecret(storage.KeyEndpoint, srv.Endpoint) }},
		{fragilev1alpha1.ReasonBundleNotFound,
			func() { must(t, storage.Delete(ctx, cfg, bundleObj)) },
			func() { must(t, storage.Put(ctx, cfg, bundleObj, sealed)) }},
		{fragilev1alpha1.ReasonBundleDigestMismatch,
			func() { must(t, storage.Put(ctx, cfg, bundleObj, append(append([]byte{}, sealed...), 0))) },
			func() { must(t, storage.Put(ctx, cfg, bundleObj, sealed)) }},
	} {
		step.breakIt()
		lc.waitCond(ns, "s3", fragilev1alpha1.ConditionIntact, "Unknown", step.reason, 4*time.Minute)
		c := meta.FindStatusCondition(lc.mw(ns, "s3").Status.Conditions, fragilev1alpha1.ConditionIntact)
		t.Logf("%s: %s", step.reason, c.Message)
		if strings.Contains(c.Message, srv.SecretKey) {
			t.Errorf("the condition shows the S3 secret key")
		}
		step.mend()
	}

	// A tampered copy of the model in S3: 2% weight noise.
	noisy, err := attack.Noise(model, attack.NoiseOptions{Sigma: 0.02, Relative: true}, rand.New(rand.NewPCG(7, 8)))
	if err != nil {
		t.Fatal(err)
	}
	must(t, storage.Put(ctx, cfg, modelObj, noisy))
	lc.waitCond(ns, "s3", fragilev1alpha1.ConditionIntact, "False", fragilev1alpha1.ReasonTamperDetected, 4*time.Minute)

	// Deleting the resources (reclaimPolicy Delete, the default) runs their cleanup Jobs: the
	// object leaves the bucket, the file leaves the claim, and each resource goes with a
	// BundleDeleted event.
	for _, mw := range []*fragilev1alpha1.ModelWatermark{s3mw, pvcmw} {
		must(t, lc.c.Delete(ctx, mw))
	}
	for _, name := range []string{"s3", "pvc"} {
		lc.waitGone(ns, name, 5*time.Minute)
		lc.waitEvent(ns, name, fragilev1alpha1.ReasonBundleDeleted, time.Minute)
	}
	if _, err := storage.Get(ctx, cfg, bundleObj, 1<<30); storage.CauseOf(err) != storage.CauseNotFound {
		t.Errorf("the bundle is still in the bucket after its resource went: %v", err)
	}
	if _, err := os.Stat(filepath.Join(lc.dir, "cluster", "pvc", "bundles", "default", "pvc.bundle")); !os.IsNotExist(err) {
		t.Errorf("the bundle is still on the claim after its resource went: %v", err)
	}
	if _, err := storage.Get(ctx, cfg, modelObj, 1<<30); err != nil {
		t.Errorf("the model, which is the user's, went with the bundle: %v", err)
	}
}

// waitGone waits until a ModelWatermark no longer exists.
func (lc *localCluster) waitGone(ns, name string, timeout time.Duration) {
	lc.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		err := lc.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &fragilev1alpha1.ModelWatermark{})
		if apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	lc.t.Fatalf("ModelWatermark %s/%s still there after %s; manager log:\n%s", ns, name, timeout, lc.managerLog())
}

// waitEvent waits for an event of the given reason about a ModelWatermark.
func (lc *localCluster) waitEvent(ns, name, reason string, timeout time.Duration) {
	lc.t.Helper()
	deadline := time.Now().Add(timeout)
	var seen []string
	for time.Now().Before(deadline) {
		var list eventsv1.EventList
		if err := lc.c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			lc.t.Fatal(err)
		}
		seen = seen[:0]
		for _, e := range list.Items {
			if e.Regarding.Kind == "ModelWatermark" && e.Regarding.Name == name {
				if e.Reason == reason {
					lc.t.Logf("%s %s: %s", name, e.Reason, e.Note)
					return
				}
				seen = append(seen, e.Reason+": "+e.Note)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	lc.t.Fatalf("no %s event about %s/%s within %s; saw %q", reason, ns, name, timeout, seen)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
