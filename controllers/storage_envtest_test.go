package controllers

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/internal/oiptest"
	"github.com/fragile-operator/fragile-operator/internal/s3test"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/storage"
)

// The envtest suite against the real S3 server (versitygw on loopback, TLS from a private CA
// in the credentials Secret; FRAGILE_S3_SERVER, which `make test` sets). The test plays the
// Job controller and kubelet: it reads each Job's command line and volumes, "mounts" the
// Secrets the Job names as directories, and runs the code `fragile` runs for that command
// (pkg/storage, pkg/fragile) against the server. What the controller is checked for: the
// flags and volumes that reach S3, the recorded digest it passes on, the reason each storage
// failure becomes, and the cleanup Job that deletes exactly the recorded bundle.

const s3Secret = "s3-credentials"

// TestEnvtestBundleStorage: model and bundle in S3 reach Watermarked=True and Intact=True;
// wrong credentials, an unreachable endpoint, a deleted and a replaced bundle each give
// Intact=Unknown with their reason, never TamperDetected; a fine-tuned model in S3 gives
// TamperDetected. A bundle on a PVC (model in S3) is Intact, a deleted file BundleNotFound, and
// deleting the resource deletes the file. Then three deletions in S3: the sealed bundle leaves
// the bucket; a bundle replaced by another writer is kept; with refused credentials the
// resource still goes and the event says what was left behind.
func TestEnvtestBundleStorage(t *testing.T) {
	s := envtestSuite(t)
	srv := s3test.Start(t)
	srv.MakeBucket(t, "models")
	srv.MakeBucket(t, "bundles")
	w, err := oiptest.Fixture()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := srv.Config()
	ns := s.namespace(t)
	modelObj := storage.S3Object{Bucket: "models", Key: ns + "/convnet.onnx"}
	must(t, storage.Put(ctx, cfg, modelObj, w.Model))
	if err := s.admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s3Secret, Namespace: ns}, Data: srv.SecretData()}); err != nil {
		t.Fatal(err)
	}
	s.keyed(t, ns, "convnet-key", w)
	claims := t.TempDir() // what the claims the Jobs mount hold: claims/CLAIM/...
	inS3 := func(name string) *fragilev1alpha1.ModelWatermark {
		return newMW(name, inNamespace(ns), withKeyRef("convnet-key"), withBundle("s3://bundles/"+ns+"/"+name, ""),
			func(mw *fragilev1alpha1.ModelWatermark) {
				mw.Spec.Triggers = int32(w.Bundle.Len())
				mw.Spec.Model = fragilev1alpha1.ModelSource{URI: modelObj.String(), S3: &fragilev1alpha1.S3Access{SecretName: s3Secret},
					InputRange: fragilev1alpha1.InputRange{Min: "0", Max: "1"}}
				mw.Spec.Bundle.S3.SecretName = s3Secret
			})
	}
	names := []string{"story", "replaced", "refused"}
	for _, name := range names {
		s.create(t, inS3(name))
		s.trainOffSecret(t, ns, name, w, claims)
		s.waitCond(t, ns, name, fragilev1alpha1.ConditionWatermarked, "True", fragilev1alpha1.ReasonWatermarked)
		if !hasFinalizer(s.mw(t, ns, name)) {
			t.Fatalf("%s: no %s finalizer", name, fragilev1alpha1.FinalizerBundleCleanup)
		}
	}
	name := names[0]
	bundleObj := storage.S3Object{Bucket: "bundles", Key: ns + "/" + name}
	st := s.mw(t, ns, name).Status
	if st.Bundle == nil || st.Bundle.URI != bundleObj.String() || st.Bundle.Digest != storage.Digest(w.Sealed) || st.Bundle.SecretName != "" {
		t.Fatalf("status.bundle %+v", st.Bundle)
	}

	s.verifyOffSecret(t, ns, name, w.Key, claims)
	s.waitCond(t, ns, name, fragilev1alpha1.ConditionIntact, "True", fragilev1alpha1.ReasonIntact)

	editSecret := func(key, value string) {
		t.Helper()
		var secret corev1.Secret
		s.get(t, ns, s3Secret, &secret)
		secret.Data[key] = []byte(value)
		if err := s.admin.Update(ctx, &secret); err != nil {
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
			func() { must(t, storage.Put(ctx, cfg, bundleObj, w.Sealed)) }},
		{fragilev1alpha1.ReasonBundleDigestMismatch,
			func() { must(t, storage.Put(ctx, cfg, bundleObj, append(append([]byte{}, w.Sealed...), 0))) },
			func() { must(t, storage.Put(ctx, cfg, bundleObj, w.Sealed)) }},
	} {
		s.clock.Step(600 * time.Second)
		s.poke(t, ns, name)
		step.breakIt()
		if rep := s.verifyOffSecret(t, ns, name, w.Key, claims); rep.Cause != step.reason {
			t.Errorf("%s: the played Job reported cause %q: %s", step.reason, rep.Cause, rep.Message)
		}
		s.waitCond(t, ns, name, fragilev1alpha1.ConditionIntact, "Unknown", step.reason)
		c := findCond(s.mw(t, ns, name).Status.Conditions, fragilev1alpha1.ConditionIntact)
		t.Logf("%s: %s", step.reason, c.Message)
		if strings.Contains(c.Message, srv.SecretKey) {
			t.Error("the condition shows the S3 secret key")
		}
		step.mend()
	}
	s.clock.Step(600 * time.Second)
	s.poke(t, ns, name)
	must(t, storage.Put(ctx, cfg, modelObj, w.FineTuned))
	if rep := s.verifyOffSecret(t, ns, name, w.Key, claims); rep.Result != fragile.ResultTampered {
		t.Fatalf("the fine-tuned model in S3: %+v", rep)
	}
	s.waitCond(t, ns, name, fragilev1alpha1.ConditionIntact, "False", fragilev1alpha1.ReasonTamperDetected)

	// The same on a PVC: the claim mounted read-write for training and cleanup, read-only for
	// verification; a deleted file is BundleNotFound; deleting the resource deletes the file.
	onPVC := newMW("onpvc", inNamespace(ns), withKeyRef("convnet-key"), withBundle("pvc://bundles/"+ns+"/onpvc.fwm", ""),
		func(mw *fragilev1alpha1.ModelWatermark) {
			mw.Spec.Triggers = int32(w.Bundle.Len())
			mw.Spec.Model = inS3("onpvc").Spec.Model
		})
	must(t, storage.Put(ctx, cfg, modelObj, w.Model))
	s.create(t, onPVC)
	s.trainOffSecret(t, ns, "onpvc", w, claims)
	s.waitCond(t, ns, "onpvc", fragilev1alpha1.ConditionWatermarked, "True", fragilev1alpha1.ReasonWatermarked)
	file := filepath.Join(claims, "bundles", ns, "onpvc.fwm")
	if st := s.mw(t, ns, "onpvc").Status.Bundle; st == nil || st.URI != "pvc://bundles/"+ns+"/onpvc.fwm" || st.Digest != storage.Digest(w.Sealed) {
		t.Fatalf("onpvc: status.bundle %+v", st)
	}
	if rep := s.verifyOffSecret(t, ns, "onpvc", w.Key, claims); rep.Result != fragile.ResultIntact {
		t.Fatalf("onpvc: %+v", rep)
	}
	s.waitCond(t, ns, "onpvc", fragilev1alpha1.ConditionIntact, "True", fragilev1alpha1.ReasonIntact)
	s.clock.Step(600 * time.Second)
	s.poke(t, ns, "onpvc")
	must(t, os.Remove(file))
	s.verifyOffSecret(t, ns, "onpvc", w.Key, claims)
	s.waitCond(t, ns, "onpvc", fragilev1alpha1.ConditionIntact, "Unknown", fragilev1alpha1.ReasonBundleNotFound)
	must(t, os.WriteFile(file, w.Sealed, 0o600))
	s.deleteAndClean(t, ns, "onpvc", claims, corev1.EventTypeNormal, fragilev1alpha1.ReasonBundleDeleted)
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("the bundle file is still on the claim: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(file)); err != nil {
		t.Errorf("the claim's directory went with the file: %v", err)
	}

	// Deleting the resource deletes its sealed bundle from the bucket.
	s.deleteAndClean(t, ns, name, claims, corev1.EventTypeNormal, fragilev1alpha1.ReasonBundleDeleted)
	if _, err := os.Stat(filepath.Join(srv.Root, "bundles", ns, name)); !os.IsNotExist(err) {
		t.Errorf("the bundle is still in the bucket: %v", err)
	}

	// A bundle another writer replaced is kept.
	other := []byte("another writer's object")
	must(t, storage.Put(ctx, cfg, storage.S3Object{Bucket: "bundles", Key: ns + "/replaced"}, other))
	s.deleteAndClean(t, ns, "replaced", claims, corev1.EventTypeWarning, fragilev1alpha1.ReasonBundleKept)
	if got, err := os.ReadFile(filepath.Join(srv.Root, "bundles", ns, "replaced")); err != nil || string(got) != string(other) {
		t.Errorf("the other writer's object: %q %v", got, err)
	}

	// Refused credentials: the resource goes, the bundle stays, the event says so.
	editSecret(storage.KeySecretAccessKey, "not-the-secret")
	s.deleteAndClean(t, ns, "refused", claims, corev1.EventTypeWarning, fragilev1alpha1.ReasonBundleCleanupFailed)
	if _, err := os.Stat(filepath.Join(srv.Root, "bundles", ns, "refused")); err != nil {
		t.Errorf("the bundle left behind is not there: %v", err)
	}
	for _, e := range s.events(t, ns, "refused") {
		if e.Reason == fragilev1alpha1.ReasonBundleCleanupFailed && !strings.Contains(e.Note, "s3://bundles/"+ns+"/refused") {
			t.Errorf("the event does not name what was left behind: %s", e.Note)
		}
	}
}

// trainOffSecret plays the training Job: it writes the fixture's sealed bundle where the Job's
// --out says, with the credentials its volume mounts or into the claim it mounts (a directory
// of claims), records the digest on the bundle Secret as `fragile watermark --progress-secret`
// does, and terminates with the report.
func (s *envSuite) trainOffSecret(t *testing.T, ns, name string, w *oiptest.Watermarked, claims string) {
	t.Helper()
	job := s.waitJob(t, ns, name, componentTraining, running)
	args := jobArgs(job)
	if storage.IsS3(args["--out"]) {
		cfg, err := storage.LoadS3Config(s.mountedSecret(t, job, args["--out-s3-credentials"]))
		if err != nil {
			t.Fatal(err)
		}
		obj, err := storage.ParseS3(args["--out"])
		if err != nil {
			t.Fatalf("training Job --out: %v", err)
		}
		must(t, storage.Put(context.Background(), cfg, obj, w.Sealed))
	} else {
		path := mountedClaim(t, job, args["--out"], claims, false)
		must(t, os.MkdirAll(filepath.Dir(path), 0o755))
		must(t, os.WriteFile(path, w.Sealed, 0o600))
	}
	digest := storage.Digest(w.Sealed)
	eventually(t, "recording the bundle digest", func() (bool, string) {
		var secret corev1.Secret
		if err := s.admin.Get(context.Background(), objectKey(ns, args["--progress-secret"]), &secret); err != nil {
			return false, err.Error()
		}
		secret.Annotations[contract.AnnotationBundleDigest] = digest
		err := s.admin.Update(context.Background(), &secret)
		return err == nil, errString(err)
	})
	s.finish(t, job, jsonReport(fragile.WatermarkReport{
		Result: fragile.WatermarkSucceeded, Method: string(w.Bundle.Method), Triggers: w.Bundle.Len(), KeyMatch: 1,
		Steps: w.Bundle.Steps, ModelDigest: w.Bundle.DigestString(), KeyID: w.Key.ID(), BundleBytes: len(w.Sealed),
		BundleURI: args["--out"], BundleDigest: digest,
	}, 0))
}

// verifyOffSecret plays the running verification Job as `fragile verify` runs it: the bundle
// read (from S3 or the mounted claim) and checked against --bundle-digest, then the model read
// from S3, both through the mounted credentials.
func (s *envSuite) verifyOffSecret(t *testing.T, ns, name string, key fragile.Key, claims string) fragile.VerifyReport {
	t.Helper()
	ctx := context.Background()
	job := s.waitJob(t, ns, name, componentVerification, running)
	args := jobArgs(job)
	rep := func() fragile.VerifyReport {
		ref, creds := s.bundleRef(t, job, claims, true)
		sealed, cause, err := storage.ReadBundle(ctx, ref, creds, args["--bundle-digest"])
		if err != nil {
			return fragile.VerifyReport{Result: fragile.ResultError, Message: err.Error(), Cause: cause}
		}
		b, err := fragile.Open(sealed, key)
		if err != nil {
			return fragile.VerifyReport{Result: fragile.ResultError, Message: err.Error()}
		}
		obj, err := storage.ParseS3(args["--model"])
		if err != nil {
			t.Fatalf("verification Job --model: %v", err)
		}
		cfg, err := storage.LoadS3Config(s.mountedSecret(t, job, args["--model-s3-credentials"]))
		if err != nil {
			t.Fatal(err)
		}
		model, err := storage.Get(ctx, cfg, obj, 1<<30)
		if err != nil {
			return fragile.VerifyReport{Result: fragile.ResultError, Message: err.Error()}
		}
		return fragile.Verify(ctx, model, b)
	}()
	msg, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	s.finish(t, job, report{message: string(msg), exitCode: int32(rep.Result.ExitCode())})
	return rep
}

// deleteAndClean deletes the resource, plays its cleanup Job with storage.ReclaimBundle (what
// `fragile cleanup` runs), and waits for the resource to go with the event of the outcome.
func (s *envSuite) deleteAndClean(t *testing.T, ns, name, claims, eventType, reason string) {
	t.Helper()
	ctx := context.Background()
	if err := s.admin.Delete(ctx, s.mw(t, ns, name)); err != nil {
		t.Fatal(err)
	}
	var job batchv1.Job
	s.get(t, ns, name+"-cleanup", &job)
	args := jobArgs(&job)
	if args["--bundle-digest"] == "" || len(job.OwnerReferences) != 0 {
		t.Fatalf("cleanup Job %s: args %v, owners %v", job.Name, args, job.OwnerReferences)
	}
	if err := s.admin.Get(ctx, objectKey(ns, name), &fragilev1alpha1.ModelWatermark{}); err != nil {
		t.Fatalf("the resource went before its cleanup ran: %v", err)
	}
	ref, creds := s.bundleRef(t, &job, claims, false)
	rep := storage.ReclaimBundle(ctx, ref, creds, args["--bundle-digest"])
	msg, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	s.finish(t, &job, report{message: string(msg), exitCode: int32(rep.Result.ExitCode())})
	eventually(t, name+" deleted", func() (bool, string) {
		err := s.admin.Get(ctx, objectKey(ns, name), &fragilev1alpha1.ModelWatermark{})
		return apierrors.IsNotFound(err), errString(err)
	})
	s.waitEvent(t, ns, name, eventType, reason)
}

// bundleRef is the Job's --bundle as the test reaches it: an s3:// URI with the directory of
// the mounted credentials, or the file inside the mounted claim (which must be read-only when
// readOnly is set).
func (s *envSuite) bundleRef(t *testing.T, job *batchv1.Job, claims string, readOnly bool) (ref, creds string) {
	t.Helper()
	args := jobArgs(job)
	if storage.IsS3(args["--bundle"]) {
		return args["--bundle"], s.mountedSecret(t, job, args["--bundle-s3-credentials"])
	}
	return mountedClaim(t, job, args["--bundle"], claims, readOnly), ""
}

// mountedClaim maps a path inside a Job to the test's directory of the claim mounted there:
// claims/CLAIM/REST. It fails when the claim's mount is not read-only and readOnly is set.
func mountedClaim(t *testing.T, job *batchv1.Job, path, claims string, readOnly bool) string {
	t.Helper()
	pod := job.Spec.Template.Spec
	for _, m := range pod.Containers[0].VolumeMounts {
		rest, ok := strings.CutPrefix(path, m.MountPath+"/")
		if !ok {
			continue
		}
		for _, v := range pod.Volumes {
			if pvc := v.PersistentVolumeClaim; v.Name == m.Name && pvc != nil {
				if readOnly && !(m.ReadOnly && pvc.ReadOnly) {
					t.Errorf("Job %s mounts claim %s read-write", job.Name, pvc.ClaimName)
				}
				return filepath.Join(claims, pvc.ClaimName, rest)
			}
		}
	}
	t.Fatalf("Job %s mounts no claim holding %q", job.Name, path)
	return ""
}

// mountedSecret is what the Job would see at dir: the Secret its volume mounted there,
// written out as one file per data key.
func (s *envSuite) mountedSecret(t *testing.T, job *batchv1.Job, dir string) string {
	t.Helper()
	pod := job.Spec.Template.Spec
	var volume string
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.MountPath == dir {
			volume = m.Name
		}
	}
	for _, v := range pod.Volumes {
		if v.Name != volume || v.Secret == nil {
			continue
		}
		var secret corev1.Secret
		s.get(t, job.Namespace, v.Secret.SecretName, &secret)
		out := t.TempDir()
		for k, b := range secret.Data {
			if err := os.WriteFile(filepath.Join(out, k), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	t.Fatalf("Job %s mounts no Secret at %q", job.Name, dir)
	return ""
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
