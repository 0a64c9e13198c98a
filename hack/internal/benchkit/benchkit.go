// Package benchkit holds what the controller benchmarks (hack/benchcontroller on envtest,
// hack/benchscale on the local control plane) measure alike: the manager's reconcile latency
// from its own native histogram, a process's CPU time and memory from /proc, and the
// formatting of the figures.
package benchkit

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
)

// Sample is one look at the manager: its reconcile histogram, how long requests waited in its
// work queue, memory and CPU time so far.
type Sample struct {
	Reconcile Histogram
	// QueueWait is workqueue_queue_duration_seconds of the controller's queue: the time from
	// a request being queued to a worker taking it, which the reconcile histogram leaves out.
	QueueWait Buckets
	// QueueDepth is the requests waiting now.
	QueueDepth          float64
	RSS, HWM, HeapInuse float64 // bytes
	CPU                 float64 // user + system seconds
}

// ScrapeManager reads the manager's metrics at url (protobuf, for the native histogram of
// controller_runtime_reconcile_time_seconds{controller}) and its process pid's /proc files.
func ScrapeManager(url, controller string, pid int) (Sample, error) {
	var s Sample
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return s, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		switch mf.GetName() {
		case "controller_runtime_reconcile_time_seconds":
			for _, m := range mf.Metric {
				for _, l := range m.Label {
					if l.GetName() == "controller" && l.GetValue() == controller {
						s.Reconcile = FromNative(m.GetHistogram())
					}
				}
			}
		case "workqueue_queue_duration_seconds":
			for _, m := range mf.Metric {
				if hasLabel(m, "name", controller) {
					s.QueueWait = fromClassic(m.GetHistogram())
				}
			}
		case "workqueue_depth":
			for _, m := range mf.Metric {
				if hasLabel(m, "name", controller) {
					s.QueueDepth += m.GetGauge().GetValue()
				}
			}
		case "go_memstats_heap_inuse_bytes":
			s.HeapInuse = mf.Metric[0].GetGauge().GetValue()
		}
	}
	s.CPU = ProcCPU(pid)
	s.RSS, s.HWM, err = ProcMemory(pid)
	return s, err
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.Label {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// Buckets is a classic Prometheus histogram: cumulative counts at upper bounds.
type Buckets struct {
	Sum, Count float64
	upper      []float64
	cum        []float64
}

func fromClassic(h *dto.Histogram) Buckets {
	b := Buckets{Sum: h.GetSampleSum(), Count: float64(h.GetSampleCount())}
	for _, bk := range h.GetBucket() {
		b.upper = append(b.upper, bk.GetUpperBound())
		b.cum = append(b.cum, float64(bk.GetCumulativeCount()))
	}
	return b
}

// Minus is the histogram of the observations made between o and b (same bucket layout).
func (b Buckets) Minus(o Buckets) Buckets {
	d := Buckets{Sum: b.Sum - o.Sum, Count: b.Count - o.Count, upper: b.upper, cum: make([]float64, len(b.cum))}
	for i := range b.cum {
		d.cum[i] = b.cum[i]
		if i < len(o.cum) {
			d.cum[i] -= o.cum[i]
		}
	}
	return d
}

// Mean is the average observation.
func (b Buckets) Mean() float64 {
	if b.Count == 0 {
		return 0
	}
	return b.Sum / b.Count
}

// Quantile is the upper bound of the bucket holding the q-th observation (+Inf beyond the
// last bound).
func (b Buckets) Quantile(q float64) float64 {
	rank := math.Ceil(q * b.Count)
	for i, c := range b.cum {
		if c >= rank {
			return b.upper[i]
		}
	}
	return math.Inf(1)
}

// ProcCPU is the user + system CPU time of process pid so far, and that of the children it
// has waited for (a node agent's Pod processes), in seconds; 0 when it cannot be read.
func ProcCPU(pid int) float64 {
	self, children := ProcTimes(pid)
	return self + children
}

// ProcTimes reads utime+stime and cutime+cstime from /proc/PID/stat, in seconds.
func ProcTimes(pid int) (self, children float64) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// Fields after the parenthesised command: utime, stime, cutime and cstime are the 12th to
	// 15th, in ticks of 1/100 s on Linux.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 15 {
		return 0, 0
	}
	tick := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v / 100 }
	return tick(11) + tick(12), tick(13) + tick(14)
}

// ProcMemory is process pid's resident set size and its peak (VmRSS, VmHWM), in bytes.
func ProcMemory(pid int) (rss, hwm float64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == "kB" {
			v, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "VmRSS:":
				rss = v * 1024
			case "VmHWM:":
				hwm = v * 1024
			}
		}
	}
	return rss, hwm, nil
}

// Histogram is a native (exponential) Prometheus histogram: bucket i holds observations in
// (base^(i-1), base^i].
type Histogram struct {
	base    float64
	zero    uint64
	zeroMax float64
	buckets map[int]uint64
	Count   uint64
}

// FromNative converts a scraped native histogram.
func FromNative(h *dto.Histogram) Histogram {
	out := Histogram{base: math.Pow(2, math.Pow(2, -float64(h.GetSchema()))), zero: h.GetZeroCount(),
		zeroMax: h.GetZeroThreshold(), buckets: map[int]uint64{}, Count: h.GetSampleCount()}
	idx, cnt, di := int32(0), int64(0), 0
	for _, sp := range h.GetPositiveSpan() {
		idx += sp.GetOffset()
		for j := uint32(0); j < sp.GetLength(); j++ {
			cnt += h.GetPositiveDelta()[di]
			di++
			out.buckets[int(idx)] = uint64(cnt)
			idx++
		}
	}
	return out
}

// Minus is the histogram of the observations made between o and h.
func (h Histogram) Minus(o Histogram) Histogram {
	d := Histogram{base: h.base, zero: h.zero - o.zero, zeroMax: h.zeroMax, buckets: map[int]uint64{}, Count: h.Count - o.Count}
	for i, c := range h.buckets {
		if c > o.buckets[i] {
			d.buckets[i] = c - o.buckets[i]
		}
	}
	return d
}

// Quantiles returns, for each q, the upper bound of the bucket holding the q-th observation.
func (h Histogram) Quantiles(qs ...float64) []float64 {
	idx := make([]int, 0, len(h.buckets))
	for i := range h.buckets {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	out := make([]float64, len(qs))
	for k, q := range qs {
		rank := uint64(math.Ceil(q * float64(h.Count)))
		cum := h.zero
		out[k] = h.zeroMax
		if cum >= rank {
			continue
		}
		for _, i := range idx {
			cum += h.buckets[i]
			out[k] = math.Pow(h.base, float64(i))
			if cum >= rank {
				break
			}
		}
	}
	return out
}

// Max is the upper bound of the highest non-empty bucket.
func (h Histogram) Max() float64 {
	m := 0.0
	for i, c := range h.buckets {
		if c > 0 {
			m = math.Max(m, math.Pow(h.base, float64(i)))
		}
	}
	return m
}

// MS formats seconds as milliseconds, MiB bytes as mebibytes.
func MS(seconds float64) string { return fmt.Sprintf("%.1f ms", seconds*1000) }
func MiB(bytes float64) string  { return fmt.Sprintf("%.0f MiB", bytes/(1<<20)) }

// Machine describes the CPU the figures were taken on.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s", runtime.NumCPU(), model, runtime.GOOS)
}

// LoadAverage is the first three fields of /proc/loadavg.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// FreeAddr is a loopback address with a port that was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// WaitHTTP polls url until it answers 200 or ctx ends.
func WaitHTTP(ctx context.Context, url string) error {
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// MachineBusy is the CPU time every process on the machine has used since boot (all of
// /proc/stat's cpu line but idle and iowait), in seconds.
func MachineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	busy := 0.0
	// user nice system idle iowait irq softirq steal ...
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		x, _ := strconv.ParseFloat(v, 64)
		busy += x
	}
	return busy / 100
}

// Logf prints a timestamped progress line on stderr.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// Retry repeats f up to five times, waiting a little longer each time: an API server sharing
// two cores with everything else sometimes times out a TLS handshake or a request.
func Retry(ctx context.Context, f func() error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = f(); err == nil {
			return nil
		}
		Logf("retrying after: %v", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * time.Second):
		}
	}
	return err
}

// FreeAddrs is n loopback addresses with ports that were free a moment ago.
func FreeAddrs(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		a, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// Condition is the status of a ModelWatermark's condition of type t, "" when it has none.
func Condition(mw *fragilev1alpha1.ModelWatermark, t string) string {
	for _, c := range mw.Status.Conditions {
		if c.Type == t {
			return string(c.Status)
		}
	}
	return ""
}
