package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/internal/s3test"
)

// jobImage is the image the operator's Jobs name; the node agent runs the fragile binary the
// test built for it.
const jobImage = "ghcr.io/fragile-operator/fragile:dev"

// localCluster is hack/local-cluster.sh's control plane with the operator's manager running as
// a process the test can kill and restart.
type localCluster struct {
	t          *testing.T
	dir        string
	fragile    string // the fragile binary the Jobs and the manager run
	kubeconfig string
	c          client.Client
	manager    *exec.Cmd
	restarts   int
}

// startLocalCluster builds fragile, starts the local control plane (stopped again at cleanup,
// and by its watchdog should this test binary be killed) and installs the CRD. It skips without
// the Kubernetes binaries or with -short.
func startLocalCluster(t *testing.T) *localCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the local control plane")
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, b)); assets == "" || err != nil {
			t.Skipf("KUBEBUILDER_ASSETS (%q) has no %s: run eval \"$(WITH_CONTROLLER_MANAGER=1 hack/setup-envtest.sh)\"", assets, b)
		}
	}
	lc := &localCluster{t: t, dir: t.TempDir()}
	lc.fragile = filepath.Join(lc.dir, "fragile")
	nodeBin := filepath.Join(lc.dir, "localnode")
	for pkg, out := range map[string]string{"./cmd/fragile": lc.fragile, "./test/localnode": nodeBin} {
		build := exec.Command("go", "build", "-o", out, pkg)
		build.Dir = "../.."
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	clusterDir := filepath.Join(lc.dir, "cluster")
	script := exec.Command("bash", "hack/local-cluster.sh", "start")
	script.Dir = "../.."
	script.Env = append(os.Environ(), "LOCAL_CLUSTER_DIR="+clusterDir, "LOCAL_NODE_BIN="+nodeBin,
		"LOCAL_NODE_IMAGE_MAP="+jobImage+"="+lc.fragile, "LOCAL_CLUSTER_OWNER_PID="+strconv.Itoa(os.Getpid()))
	var stderr strings.Builder
	script.Stderr = &stderr
	if _, err := script.Output(); err != nil {
		t.Fatalf("local-cluster.sh start: %v\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		lc.stopManager()
		stop := exec.Command("bash", "hack/local-cluster.sh", "stop")
		stop.Dir = "../.."
		stop.Env = append(os.Environ(), "LOCAL_CLUSTER_DIR="+clusterDir)
		if out, err := stop.CombinedOutput(); err != nil {
			t.Errorf("local-cluster.sh stop: %v\n%s", err, out)
		}
	})
	lc.kubeconfig = filepath.Join(clusterDir, "kubeconfig")
	lc.kubectl("apply", "-f", "config/crd/bases")
	lc.kubectl("wait", "--for", "condition=Established", "crd/modelwatermarks.fragile.dev", "--timeout", "30s")

	cfg, err := clientcmd.BuildConfigFromFlags("", lc.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	logf.SetLogger(logr.Discard())
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := fragilev1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if lc.c, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	return lc
}

func (lc *localCluster) kubectl(args ...string) string {
	lc.t.Helper()
	cmd := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), append([]string{"--kubeconfig", lc.kubeconfig}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		lc.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startManager runs `fragile manager` against the cluster, its log in manager-N.log.
func (lc *localCluster) startManager() {
	lc.t.Helper()
	lc.restarts++
	logFile, err := os.Create(filepath.Join(lc.dir, fmt.Sprintf("manager-%d.log", lc.restarts)))
	if err != nil {
		lc.t.Fatal(err)
	}
	cmd := exec.Command(lc.fragile, "manager", "--kubeconfig", lc.kubeconfig, "--job-image", jobImage,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "127.0.0.1:"+s3test.FreePort(lc.t))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		lc.t.Fatal(err)
	}
	lc.manager = cmd
}

// killManager ends the manager with SIGKILL, as a node failure or OOM kill would: no cleanup,
// no final status write.
func (lc *localCluster) killManager() {
	lc.t.Helper()
	if lc.manager == nil {
		return
	}
	_ = lc.manager.Process.Signal(syscall.SIGKILL)
	_ = lc.manager.Wait()
	lc.manager = nil
}

func (lc *localCluster) stopManager() {
	if lc.manager == nil {
		return
	}
	_ = lc.manager.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = lc.manager.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = lc.manager.Process.Kill()
		<-done
	}
	lc.manager = nil
}

// managerLog is the tail of the newest manager log, for failure messages.
func (lc *localCluster) managerLog() string {
	b, _ := os.ReadFile(filepath.Join(lc.dir, fmt.Sprintf("manager-%d.log", lc.restarts)))
	lines := strings.Split(string(b), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

func (lc *localCluster) mw(ns, name string) *fragilev1alpha1.ModelWatermark {
	lc.t.Helper()
	var mw fragilev1alpha1.ModelWatermark
	if err := lc.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &mw); err != nil {
		lc.t.Fatal(err)
	}
	return &mw
}

// waitCond waits for a condition of a ModelWatermark to have the status and reason.
func (lc *localCluster) waitCond(ns, name, condType, status, reason string, timeout time.Duration) {
	lc.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		mw := lc.mw(ns, name)
		if c := meta.FindStatusCondition(mw.Status.Conditions, condType); c != nil {
			if string(c.Status) == status && c.Reason == reason {
				return
			}
			last = fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
		}
		time.Sleep(250 * time.Millisecond)
	}
	lc.t.Fatalf("timed out after %s waiting for %s=%s (%s); last saw %s\nmanager log:\n%s",
		timeout, condType, status, reason, last, lc.managerLog())
}

// jobs lists the Jobs of a ModelWatermark's component that are not being deleted.
func (lc *localCluster) jobs(ns, name, component string) []batchv1.Job {
	lc.t.Helper()
	var list batchv1.JobList
	if err := lc.c.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{
		fragilev1alpha1.LabelModelWatermark: name, "app.kubernetes.io/component": component}); err != nil {
		lc.t.Fatal(err)
	}
	var out []batchv1.Job
	for _, j := range list.Items {
		if j.DeletionTimestamp.IsZero() {
			out = append(out, j)
		}
	}
	return out
}

func jobNames(jobs []batchv1.Job) []string {
	names := make([]string, len(jobs))
	for i, j := range jobs {
		names[i] = j.Name
	}
	return names
}
