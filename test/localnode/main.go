// Command localnode is a development tool, not a kubelet: a "node" for the local control plane
// of hack/local-cluster.sh that runs each Pod's single container as a plain process on this
// machine, so the Jobs fragile-operator creates really run without Docker, kind or a cluster.
//
// What it does:
//   - registers one Node (Ready, with this machine's CPU, memory and disk as capacity) and keeps
//     it Ready with a heartbeat; marks it not ready when it stops;
//   - watches Pods with a client-go informer; with no scheduler in the local control plane it
//     binds pending unscheduled Pods of the default scheduler to its Node (POST pods/NAME/binding),
//     checking only nodeSelector;
//   - runs the container as a host process: command and args with $(VAR) expansion, env
//     (value, secretKeyRef, configMapKeyRef, fieldRef, envFrom), workingDir, and volumes
//     (secret, configMap, emptyDir, hostPath, persistentVolumeClaim, downwardAPI) materialised
//     under a per-pod directory ROOT/pods/NAMESPACE_NAME_UID;
//   - reports phase Running then Succeeded or Failed, startTime, conditions and a container
//     status with state.terminated {exitCode, reason, message}; the message is read from the
//     termination message file (at most 4096 bytes, as the kubelet does, with
//     FallbackToLogsOnError honoured);
//   - stops the process of a deleted Pod (SIGTERM to its process group, SIGKILL after the grace
//     period, capped by --max-grace), confirms the deletion and removes the per-pod directory;
//   - refuses what it cannot honour (more than one container, init containers, an image not in
//     --image-map, restartPolicy other than Never, probes, lifecycle hooks, other volume types,
//     subPathExpr, resourceFieldRef, ...) with a Warning event (reason UnsupportedByLocalNode)
//     and a Failed Pod, never silently. Fields it accepts but cannot enforce (securityContext,
//     resources, ports, readOnly mounts, scheduling constraints) are listed in a Normal event.
//
// Images are not pulled: --image-map IMAGE=BINARY is an allow-list that says which host binary
// stands for an image's entrypoint. With no command the process is BINARY with the Pod's args.
// With a command, command[0] is BINARY if its base name matches (so "/fragile", "fragile" and
// "/usr/local/bin/fragile" all run the locally built fragile), a file under a mounted volume if
// it is one, and otherwise, unless --allow-host-commands=false, the host program of that base
// name on PATH (so `sh -c ...` runs the host's sh). A symlink named like BINARY is first on the
// process's PATH, so scripts can call it by name.
//
// Mount paths: a host process cannot see /var/run/fragile/key or /dev/termination-log. Each
// volume is a host directory, and every occurrence of a volumeMount's mountPath (and of the
// terminationMessagePath) that stands as a path of its own in command, args, env values and
// workingDir is rewritten to the host path; nested mounts resolve longest first. A path compiled
// into a program, or built at run time from pieces, is not rewritten: programs run under this
// agent must take their paths from flags or env. The process gets only the Pod's env plus
// PATH, HOME (a per-pod directory), HOSTNAME, TMPDIR (when a volume is mounted at /tmp) and
// KUBECONFIG (below); it runs as the agent's user with the host network, and writes stdout and
// stderr to ROOT/pods/.../container.log (kubectl logs does not work).
//
// Service account: the in-cluster configuration cannot work for a host process (client-go reads
// the token from a compiled-in path and dials the kubernetes Service). For a Pod that names a
// serviceAccountName and does not set automountServiceAccountToken: false, the agent asks the
// TokenRequest API for a token bound to the Pod, writes token, ca.crt, namespace and a
// kubeconfig under the per-pod directory (mapped from /var/run/secrets/kubernetes.io/
// serviceaccount) and sets KUBECONFIG, so a program that falls back to $KUBECONFIG acts as
// that ServiceAccount with exactly its RBAC rights. The token is not refreshed (1 hour).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
)

// imageMap is the repeatable --image-map IMAGE=BINARY flag.
type imageMap map[string]string

func (m imageMap) String() string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (m imageMap) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		img, bin, ok := strings.Cut(part, "=")
		if !ok || img == "" || bin == "" {
			return fmt.Errorf("want IMAGE=BINARY, got %q", part)
		}
		abs, err := filepath.Abs(bin)
		if err != nil {
			return err
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("image %s: %s is not an executable file", img, abs)
		}
		m[img] = abs
	}
	return nil
}

func main() {
	images := imageMap{}
	var (
		kubeconfig    = flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the control plane")
		nodeName      = flag.String("node-name", "local-node", "name of the Node to register")
		rootDir       = flag.String("root-dir", filepath.Join(os.TempDir(), "fragile-localnode"), "directory for per-pod directories (ROOT/pods/...)")
		pvcRoot       = flag.String("pvc-root", "", "PersistentVolumeClaim CLAIM is the directory PVC_ROOT/CLAIM (default ROOT/pvc)")
		hostIP        = flag.String("host-ip", "127.0.0.1", "address reported as the Node's InternalIP and as hostIP/podIP")
		hostCommands  = flag.Bool("allow-host-commands", true, "let command[0] name a host program on PATH when it is not the mapped binary (e.g. sh)")
		schedulerName = flag.String("scheduler-name", corev1.DefaultSchedulerName, "bind unscheduled Pods that ask for this scheduler")
		maxGrace      = flag.Duration("max-grace", 10*time.Second, "cap on a Pod's termination grace period before SIGKILL")
		maxPods       = flag.Int64("max-pods", 110, "pods capacity reported for the Node")
		heartbeat     = flag.Duration("heartbeat", 10*time.Second, "how often the Node status is refreshed")
		// The kubelet's defaults (kubeAPIQPS 50, kubeAPIBurst 100). client-go's own, 5 and 10,
		// would hold every Pod to about 0.5 starts a second: each costs about ten requests.
		qps   = flag.Float64("kube-api-qps", 50, "requests per second to the API server (the kubelet's default)")
		burst = flag.Int("kube-api-burst", 100, "burst of requests to the API server (the kubelet's default)")
	)
	flag.Var(images, "image-map", "IMAGE=BINARY: run BINARY for Pods of IMAGE; repeatable or comma-separated; unmapped images are refused")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: localnode --kubeconfig FILE --image-map IMAGE=BINARY [flags]\n\n"+
			"Development tool, not a kubelet: runs the Pods of a local control plane as host processes.\n"+
			"See the package documentation (go doc ./test/localnode) and hack/README.md.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	logger := log.New(os.Stderr, "localnode: ", log.LstdFlags)
	if *kubeconfig == "" {
		logger.Fatal("--kubeconfig (or KUBECONFIG) is required")
	}
	if len(images) == 0 {
		logger.Print("warning: no --image-map given: every Pod will be refused")
	}
	if *pvcRoot == "" {
		*pvcRoot = filepath.Join(*rootDir, "pvc")
	}
	for _, d := range []string{filepath.Join(*rootDir, "pods"), *pvcRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			logger.Fatal(err)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		logger.Fatal(err)
	}
	cfg.UserAgent = "localnode (test/localnode development agent)"
	cfg.QPS, cfg.Burst = float32(*qps), *burst
	ca := cfg.TLSClientConfig.CAData
	if len(ca) == 0 && cfg.TLSClientConfig.CAFile != "" {
		if ca, err = os.ReadFile(cfg.TLSClientConfig.CAFile); err != nil {
			logger.Fatal(err)
		}
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		logger.Fatal(err)
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()

	agent := &Agent{
		Client: client,
		Translator: &Translator{
			Client:            client,
			ImageMap:          images,
			PVCRoot:           *pvcRoot,
			NodeName:          *nodeName,
			HostIP:            *hostIP,
			AllowHostCommands: *hostCommands,
			APIServer:         cfg.Host,
			APIServerCA:       ca,
		},
		Runner:        execRunner{},
		Recorder:      broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "localnode", Host: *nodeName}),
		NodeName:      *nodeName,
		RootDir:       *rootDir,
		SchedulerName: *schedulerName,
		MaxGrace:      *maxGrace,
		MaxPods:       *maxPods,
		Heartbeat:     *heartbeat,
		Log:           logger,
	}
	for img, bin := range images {
		logger.Printf("image %s -> %s", img, bin)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := agent.Run(ctx); err != nil {
		logger.Fatal(err)
	}
	logger.Print("stopped")
}
