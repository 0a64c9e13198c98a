package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/fragile-operator/fragile-operator/pkg/contract"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
)

// This file is the training Job's side of `fragile watermark --out-secret NAME`: the sealed
// bundle goes into data key contract.BundleDataKey of Secret NAME in the Pod's namespace, and progress into
// that Secret's fragile.dev/training-progress annotation. The operator pre-creates the Secret
// and binds the Job's ServiceAccount to a Role allowing get, patch and update of that one
// Secret, which is all this code uses.

const (
	// maxBundleSecretBytes keeps the bundle, plus the Secret's metadata, under the API server's
	// 1 MiB object limit, so that an oversized bundle fails with a clear message instead of an
	// opaque "request entity too large".
	maxBundleSecretBytes = 1<<20 - 16<<10
	// progressInterval throttles progress annotations: one API write per few seconds is
	// plenty for a person watching `kubectl get mw`, and nothing for the API server.
	progressInterval = 5 * time.Second
	// progressTimeout bounds one progress write, so a slow API server cannot stall training.
	progressTimeout = 5 * time.Second
)

// writeBundleSecret stores the sealed bundle in Secret name of the Pod's namespace, using the
// in-cluster configuration.
func writeBundleSecret(ctx context.Context, name string, bundle []byte) error {
	secrets, err := inClusterSecrets()
	if err != nil {
		return err
	}
	return storeBundle(ctx, secrets, name, os.Getenv(contract.EnvWatermarkHash), bundle)
}

// storeBundle writes bundle into Secret name with optimistic concurrency. When hash is set (the
// operator passes it in FRAGILE_WATERMARK_HASH) the Secret must still be reserved for that
// watermark: a training Job superseded by a spec change must not overwrite the newer bundle.
func storeBundle(ctx context.Context, secrets corev1client.SecretInterface, name, hash string, bundle []byte) error {
	if len(bundle) == 0 {
		return errors.New("refusing to store an empty bundle")
	}
	if len(bundle) > maxBundleSecretBytes {
		return fmt.Errorf("the sealed bundle is %d bytes, more than the %d a Secret can hold; use fewer triggers",
			len(bundle), maxBundleSecretBytes)
	}
	sum := sha256.Sum256(bundle)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	return updateReserved(ctx, secrets, name, hash, digest, map[string][]byte{contract.BundleDataKey: bundle})
}

// writeBundleRecord marks Secret name with the digest of a bundle stored elsewhere (a PVC or
// S3), under the same reservation check: the operator learns the digest from it, and a
// superseded Job cannot claim a newer watermark's place.
func writeBundleRecord(ctx context.Context, name, digest string) error {
	secrets, err := inClusterSecrets()
	if err != nil {
		return err
	}
	return updateReserved(ctx, secrets, name, os.Getenv(contract.EnvWatermarkHash), digest, nil)
}

// updateReserved sets the bundle digest annotation and data of Secret name with optimistic
// concurrency, if the Secret is still reserved for watermark hash (when set).
func updateReserved(ctx context.Context, secrets corev1client.SecretInterface, name, hash, digest string, data map[string][]byte) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading Secret %s: %w", name, err)
		}
		if reserved := s.Annotations[contract.AnnotationWatermarkHash]; hash != "" && reserved != hash {
			return fmt.Errorf("Secret %s is reserved for watermark %q, but this Job trains %q: a newer training "+
				"run superseded this one, so its bundle is discarded", name, reserved, hash)
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[contract.AnnotationBundleDigest] = digest
		s.Data = data
		if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsConflict(err) {
				return err
			}
			return fmt.Errorf("writing the bundle into Secret %s: %w", name, err)
		}
		return nil
	})
}

// newSecretProgressReporter returns a fragile.Progress callback that writes a throttled
// progress line to Secret name's annotation. Progress is a convenience: failures are reported
// once on stderr and never stop training.
func newSecretProgressReporter(ctx context.Context, name string) func(fragile.Progress) {
	secrets, err := inClusterSecrets()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fragile: training progress will not be reported: %v\n", err)
		return func(fragile.Progress) {}
	}
	return progressReporter(ctx, secrets, name, time.Now)
}

func progressReporter(ctx context.Context, secrets corev1client.SecretInterface, name string, now func() time.Time) func(fragile.Progress) {
	var (
		mu     sync.Mutex
		last   time.Time
		warned bool
	)
	return func(p fragile.Progress) {
		mu.Lock()
		defer mu.Unlock()
		done := p.KeyMatch >= 1
		if p.Phase == fragile.PhaseRefinement {
			done = p.Tied >= 1
		}
		final := p.MaxSteps > 0 && p.Step >= p.MaxSteps || done
		if !final && !last.IsZero() && now().Sub(last) < progressInterval {
			return
		}
		last = now()
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
			contract.AnnotationTrainingProgress: progressLine(p),
		}}})
		wctx, cancel := context.WithTimeout(ctx, progressTimeout)
		defer cancel()
		if _, err := secrets.Patch(wctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !warned {
			warned = true
			fmt.Fprintf(os.Stderr, "fragile: could not report training progress on Secret %s: %v\n", name, err)
		}
	}
}

// progressLine formats progress for people: "step 40/300, key match 87%" while training,
// "tie refinement 3/20, 74% of triggers tied" after. Percentages are rounded down so that
// 100% means every trigger.
func progressLine(p fragile.Progress) string {
	if p.Phase == fragile.PhaseRefinement {
		return fmt.Sprintf("tie refinement %d/%d, %d%% of triggers tied", p.Step, p.MaxSteps, int(p.Tied*100))
	}
	return fmt.Sprintf("step %d/%d, key match %d%%", p.Step, p.MaxSteps, int(p.KeyMatch*100))
}

// inClusterSecrets is the Secrets client of the Pod's namespace: $POD_NAMESPACE (set by the
// operator through the downward API), else the ServiceAccount's namespace file. Outside a Pod
// (a developer's shell, or the local demo's node agent, which runs containers as processes) it
// falls back to $KUBECONFIG.
func inClusterSecrets() (corev1client.SecretInterface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		kubeconfig := os.Getenv("KUBECONFIG")
		if kubeconfig == "" {
			return nil, fmt.Errorf("--out-secret needs to run inside a Kubernetes Pod or with $KUBECONFIG: %w", err)
		}
		if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
			return nil, fmt.Errorf("--out-secret: reading $KUBECONFIG: %w", err)
		}
	}
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
		if err != nil {
			return nil, errors.New("--out-secret needs POD_NAMESPACE or a ServiceAccount namespace file")
		}
		ns = strings.TrimSpace(string(b))
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return cs.CoreV1().Secrets(ns), nil
}
