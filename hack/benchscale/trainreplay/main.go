// Command trainreplay is the program hack/benchscale's node agent runs for the operator's Job
// image (built as "fragile", next to a replay.json). Training 1,000 watermarks would take the
// benchmark's two cores hours, so the benchmark trains once and this program replays that
// training for every resource whose training Job would compute exactly the same thing:
//
//   - `fragile watermark` with the recorded recipe (the same model bytes, the same key bytes
//     and the same flags besides where the outputs go) writes the recorded sealed bundle into
//     --out-secret and the recorded report into --report, and exits 0. pkg/fragile derives every
//     random draw from the key, so the same key and model give a byte-identical bundle: the
//     Secret ends up holding what the real training Job would have written there. It writes the
//     Secret as cmd/fragile's storeBundle does (read, check the watermark-hash reservation, set
//     the digest annotation and the data, update with optimistic concurrency) with the Pod's
//     ServiceAccount token, so the trainer's RBAC is exercised. It skips the training progress
//     annotations.
//   - Everything else, every `fragile verify` in particular, and a watermark with any other
//     recipe, is the real fragile binary: the process replaces itself with it (exec), same
//     arguments, same environment.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/fragile-operator/fragile-operator/hack/benchscale/recipe"
	"github.com/fragile-operator/fragile-operator/pkg/contract"
)

func main() {
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	r, err := recipe.Read(filepath.Join(filepath.Dir(self), recipe.FileName))
	if err != nil {
		fail(err)
	}
	if len(os.Args) > 1 && os.Args[1] == "watermark" {
		replayed, err := replay(&r, os.Args[2:])
		if err != nil {
			fail(err)
		}
		if replayed {
			return
		}
	}
	args := append([]string{r.Fragile}, os.Args[1:]...)
	fail(syscall.Exec(r.Fragile, args, os.Environ()))
}

// replay writes the recorded bundle and report when args ask for the recorded recipe; false
// means they do not, and the real binary must run.
func replay(r *recipe.Recipe, args []string) (bool, error) {
	flags, out, ok := recipe.Flags(args)
	if !ok || !slices.Equal(flags, r.Flags) || out["--out-secret"] == "" || out["--report"] == "" {
		return false, nil
	}
	if d, err := recipe.FileDigest(out["--model"]); err != nil || d != r.ModelSHA256 {
		return false, nil
	}
	if d, err := recipe.FileDigest(out["--key"]); err != nil || d != r.KeySHA256 {
		return false, nil
	}
	bundle, err := os.ReadFile(r.Bundle)
	if err != nil {
		return false, err
	}
	report, err := os.ReadFile(r.Report)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := storeBundle(ctx, out["--out-secret"], os.Getenv(contract.EnvWatermarkHash), bundle); err != nil {
		return false, err
	}
	return true, os.WriteFile(out["--report"], report, 0o644)
}

// storeBundle writes bundle into Secret name of $POD_NAMESPACE through $KUBECONFIG (the node
// agent's kubeconfig for the Pod's ServiceAccount), if the Secret is still reserved for hash.
func storeBundle(ctx context.Context, name, hash string, bundle []byte) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		return fmt.Errorf("$KUBECONFIG: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		return errors.New("POD_NAMESPACE is not set")
	}
	secrets := cs.CoreV1().Secrets(ns)
	sum := sha256.Sum256(bundle)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if reserved := s.Annotations[contract.AnnotationWatermarkHash]; hash != "" && reserved != hash {
			return fmt.Errorf("Secret %s is reserved for watermark %q, not %q", name, reserved, hash)
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[contract.AnnotationBundleDigest] = "sha256:" + hex.EncodeToString(sum[:])
		s.Data = map[string][]byte{contract.BundleDataKey: bundle}
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
		return err
	})
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "trainreplay:", err)
	os.Exit(2)
}
