package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
	"github.com/fragile-operator/fragile-operator/controllers"
	"github.com/fragile-operator/fragile-operator/pkg/metrics"
)

func init() { subcommands["manager"] = runManager }

// runManager runs the operator: the ModelWatermark controller, health and readiness probes and
// the Prometheus metrics endpoint (HTTPS with authentication and authorization by default).
func runManager(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("fragile manager", flag.ContinueOnError)
	var (
		metricsAddr = fs.String("metrics-bind-address", ":8443",
			`address of the Prometheus /metrics endpoint; "0" disables it`)
		secureMetrics = fs.Bool("metrics-secure", true,
			"serve /metrics over HTTPS, to callers whose token the API server authenticates and authorizes "+
				"for GET /metrics (ClusterRole metrics-reader); false serves plain HTTP to anyone")
		metricsCertDir = fs.String("metrics-cert-dir", "",
			"directory with the metrics server's tls.crt and tls.key (say, from cert-manager); "+
				"without it a self-signed certificate is generated at start")
		enableHTTP2 = fs.Bool("enable-http2", false,
			"serve HTTP/2 on the metrics endpoint; off because of the HTTP/2 stream resets of CVE-2023-44487 and CVE-2023-39325")
		probeAddr = fs.String("health-probe-bind-address", ":8081",
			"address of the /healthz and /readyz endpoints")
		leaderElect = fs.Bool("leader-elect", false,
			"elect a leader (a Lease in the manager's namespace) so that only one replica reconciles")
		workers = fs.Int("max-concurrent-reconciles", 4,
			"ModelWatermarks reconciled at once; reconciles wait on the API server, so a few workers drain a burst of due verifications faster")
		jobImage = fs.String("job-image", envOr("FRAGILE_IMAGE", controllers.DefaultJobImage),
			"image of the training and verification Jobs: the operator's own image (env FRAGILE_IMAGE)")
	)
	// --kubeconfig, as every controller-runtime manager has it; without it the in-cluster
	// configuration or $KUBECONFIG is used.
	config.RegisterFlags(fs)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitUsage
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("manager")

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		log.Error(err, "building the scheme")
		return exitUsage
	}
	if err := fragilev1alpha1.AddToScheme(scheme); err != nil {
		log.Error(err, "building the scheme")
		return exitUsage
	}
	metrics.Register(ctrlmetrics.Registry)

	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "no Kubernetes configuration (in-cluster, --kubeconfig or KUBECONFIG)")
		return exitUsage
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOptions(*metricsAddr, *secureMetrics, *metricsCertDir, *enableHTTP2),
		HealthProbeBindAddress: *probeAddr,
		LeaderElection:         *leaderElect,
		LeaderElectionID:       "fragile-operator.fragile.dev",
		Cache:                  controllers.CacheOptions(),
	})
	if err != nil {
		log.Error(err, "creating the manager")
		return exitUsage
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "adding the health check")
		return exitUsage
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "adding the readiness check")
		return exitUsage
	}
	r := &controllers.ModelWatermarkReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("fragile-operator"),
		Clock:     clock.RealClock{},
		JobImage:  *jobImage,

		MaxConcurrentReconciles: *workers,
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		log.Error(err, "setting up the ModelWatermark controller")
		return exitUsage
	}
	log.Info("starting", "jobImage", *jobImage)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "manager stopped")
		return exitUsage
	}
	return 0
}

// metricsOptions serves /metrics as kubebuilder scaffolds it today: HTTPS, with each request's
// bearer token checked by the API server (TokenReview) and authorized for GET on the /metrics
// non-resource URL (SubjectAccessReview), so only ServiceAccounts bound to the metrics-reader
// ClusterRole can scrape it.
func metricsOptions(addr string, secure bool, certDir string, http2 bool) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: addr, SecureServing: secure}
	if !secure {
		return opts
	}
	opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	if certDir != "" {
		opts.CertDir, opts.CertName, opts.KeyName = certDir, "tls.crt", "tls.key"
	}
	if !http2 {
		opts.TLSOpts = append(opts.TLSOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	return opts
}

// envOr returns the environment variable key, or def when it is unset or empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
