package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"
)

// The envtest suite runs the controller in a real manager against a real kube-apiserver and
// etcd (built by hack/setup-envtest.sh; KUBEBUILDER_ASSETS points at them) with the CRD from
// config/crd/bases. There is no Job controller and no kubelet: tests play their part by writing
// Job status and creating the terminated Pod. The manager runs as a user holding only the
// ClusterRole that `make manifests` generates, so a missing RBAC marker fails these tests.

// managerUser is the identity the manager runs as in the suite.
const managerUser = "system:serviceaccount:fragile-system:fragile-controller-manager"

type envSuite struct {
	env        *envtest.Environment
	admin      client.Client // the test's own, uncached, all-powerful client
	scheme     *runtime.Scheme
	clock      *clocktesting.FakeClock
	cancel     context.CancelFunc
	done       chan struct{}
	kubeconfig string // admin kubeconfig file, for kubectl
}

var (
	suiteOnce sync.Once
	suite     *envSuite
	suiteErr  error
	nsCounter atomic.Int32
)

// TestMain stops the control plane, if a test started it, after all tests ran.
func TestMain(m *testing.M) {
	code := m.Run()
	if suite != nil {
		suite.cancel()
		<-suite.done
		if err := suite.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
		_ = os.Remove(suite.kubeconfig)
	}
	os.Exit(code)
}

// envtestSuite starts the shared control plane and manager on first use, or skips the test
// when the binaries are not available (`make test` provides them).
func envtestSuite(t *testing.T) *envSuite {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run `make test`, or eval \"$(hack/setup-envtest.sh)\" first")
	}
	suiteOnce.Do(func() {
		s, err := startSuite()
		if err != nil && s != nil && s.env != nil {
			// envtest leaves its processes running when, say, a CRD fails to install.
			_ = s.env.Stop()
		}
		suite, suiteErr = s, err
		if err != nil {
			suite = nil
		}
	})
	if suiteErr != nil {
		t.Fatalf("starting envtest: %v", suiteErr)
	}
	return suite
}

func startSuite() (*envSuite, error) {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	s := &envSuite{scheme: runtimeScheme(), clock: clocktesting.NewFakeClock(t0), done: make(chan struct{})}
	s.env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := s.env.Start()
	if err != nil {
		return s, err
	}
	if s.admin, err = client.New(cfg, client.Options{Scheme: s.scheme}); err != nil {
		return s, err
	}
	kc, err := os.CreateTemp("", "fragile-envtest-kubeconfig-*")
	if err != nil {
		return s, err
	}
	if _, err := kc.Write(s.env.KubeConfig); err != nil {
		return s, err
	}
	kc.Close()
	s.kubeconfig = kc.Name()

	managerCfg, err := s.managerConfig(cfg)
	if err != nil {
		return s, err
	}
	mgr, err := ctrl.NewManager(managerCfg, ctrl.Options{
		Scheme:                 s.scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptions(),
	})
	if err != nil {
		return s, err
	}
	r := &ModelWatermarkReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("fragile-operator"),
		Clock:     s.clock,
		JobImage:  DefaultJobImage,
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return s, err
	}
	go func() {
		defer close(s.done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return s, nil
}

// managerConfig creates a user bound to the generated config/rbac/role.yaml and returns its
// client configuration.
func (s *envSuite) managerConfig(admin *rest.Config) (*rest.Config, error) {
	raw, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(raw, &role); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := s.admin.Create(ctx, &role); err != nil {
		return nil, err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "fragile-manager"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: managerUser}},
	}
	if err := s.admin.Create(ctx, binding); err != nil {
		return nil, err
	}
	user, err := s.env.AddUser(envtest.User{Name: managerUser}, admin)
	if err != nil {
		return nil, err
	}
	return user.Config(), nil
}

func runtimeScheme() *runtime.Scheme {
	s, err := buildScheme()
	if err != nil {
		panic(err)
	}
	return s
}

// zapLevel keeps the manager's log to errors unless FRAGILE_TEST_VERBOSE is set.
func zapLevel() zapcore.Level {
	if os.Getenv("FRAGILE_TEST_VERBOSE") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// namespace creates a fresh namespace, with the default ServiceAccount the Pod admission
// expects (no controller-manager creates it here).
func (s *envSuite) namespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%d", time.Now().UnixNano()%100000, nsCounter.Add(1))
	ctx := context.Background()
	if err := s.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	if err := s.admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// eventually polls cond until it returns true or ten seconds pass; cond's string says what it
// saw last, for the failure message.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last saw: %s", what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
