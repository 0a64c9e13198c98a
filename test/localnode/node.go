package main

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// nodeVersion is what `kubectl get nodes` shows as VERSION: deliberately not a kubelet version.
const nodeVersion = "v0.0.0-localnode"

// registerNode creates the Node (or takes over one left by an earlier run), removes the
// not-ready taint the TaintNodesByCondition admission plugin puts on new Nodes (no node
// lifecycle controller runs here to remove it), and reports it Ready.
func (a *Agent) registerNode(ctx context.Context) error {
	a.labels = map[string]string{
		"kubernetes.io/hostname": a.NodeName,
		"kubernetes.io/os":       runtime.GOOS,
		"kubernetes.io/arch":     runtime.GOARCH,
		"fragile.dev/localnode":  "true",
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := a.Client.CoreV1().Nodes().Get(ctx, a.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = a.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{
					Name:   a.NodeName,
					Labels: a.labels,
					Annotations: map[string]string{
						"fragile.dev/localnode-agent": "test/localnode: a development tool that runs Pods as host processes, not a kubelet",
					},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				return err
			}
			node, err = a.Client.CoreV1().Nodes().Get(ctx, a.NodeName, metav1.GetOptions{})
		}
		if err != nil {
			return err
		}
		var taints []corev1.Taint
		for _, t := range node.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady && t.Key != corev1.TaintNodeUnreachable {
				taints = append(taints, t)
			}
		}
		if len(taints) != len(node.Spec.Taints) || node.Spec.Unschedulable {
			node.Spec.Taints = taints
			node.Spec.Unschedulable = false
			_, err = a.Client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		}
		return err
	})
	if err != nil {
		return err
	}
	return a.updateNodeStatus(ctx, true)
}

// updateNodeStatus writes capacity, addresses, node info and the Ready condition; it is also
// the heartbeat.
func (a *Agent) updateNodeStatus(ctx context.Context, ready bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := a.Client.CoreV1().Nodes().Get(ctx, a.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		capacity := a.capacity()
		node.Status.Capacity = capacity
		node.Status.Allocatable = capacity
		node.Status.Phase = corev1.NodeRunning
		hostname, _ := os.Hostname()
		node.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.Translator.HostIP},
			{Type: corev1.NodeHostName, Address: hostname},
		}
		node.Status.NodeInfo = corev1.NodeSystemInfo{
			KubeletVersion:          nodeVersion,
			ContainerRuntimeVersion: "localnode://host-process",
			OperatingSystem:         runtime.GOOS,
			Architecture:            runtime.GOARCH,
			OSImage:                 osImage(),
			KernelVersion:           kernelVersion(),
			MachineID:               readTrim("/etc/machine-id"),
			BootID:                  readTrim("/proc/sys/kernel/random/boot_id"),
		}
		readyStatus, reason, msg := corev1.ConditionTrue, "LocalNodeAgentReady", "test/localnode is running Pods as host processes (development tool, not a kubelet)"
		if !ready {
			readyStatus, reason, msg = corev1.ConditionFalse, "LocalNodeAgentStopped", "test/localnode has stopped"
		}
		conds := []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: readyStatus, Reason: reason, Message: msg},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "LocalNodeAgent"},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "LocalNodeAgent"},
			{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "LocalNodeAgent"},
		}
		for i := range conds {
			conds[i].LastHeartbeatTime = now
			conds[i].LastTransitionTime = now
			for _, old := range node.Status.Conditions {
				if old.Type == conds[i].Type && old.Status == conds[i].Status {
					conds[i].LastTransitionTime = old.LastTransitionTime
				}
			}
		}
		node.Status.Conditions = conds
		_, err = a.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
}

func (a *Agent) capacity() corev1.ResourceList {
	maxPods := a.MaxPods
	if maxPods == 0 {
		maxPods = 110
	}
	rl := corev1.ResourceList{
		corev1.ResourceCPU:  *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourcePods: *resource.NewQuantity(maxPods, resource.DecimalSI),
	}
	if kb := memTotalKiB(); kb > 0 {
		rl[corev1.ResourceMemory] = *resource.NewQuantity(kb*1024, resource.BinarySI)
	}
	var fs syscall.Statfs_t
	if syscall.Statfs(a.RootDir, &fs) == nil {
		rl[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI)
	}
	return rl
}

func memTotalKiB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func osImage() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

func kernelVersion() string { return readTrim("/proc/sys/kernel/osrelease") }

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}
