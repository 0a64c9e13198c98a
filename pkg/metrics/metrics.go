// Package metrics defines the Prometheus series the operator exports for alerting on
// ModelWatermarks. The vectors are package variables, as in kueue, but nothing is registered
// until the manager calls Register, so tests and the `fragile` CLI subcommands that never
// serve /metrics leave the registry untouched.
//
// Every series is labelled by namespace and name only: no key, trigger, label or report text
// ever becomes a label value.
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	namespace = "fragile"
	subsystem = "modelwatermark"
)

// Condition status label values of IntactStatus, one-hot.
var conditionStatuses = []string{"True", "False", "Unknown"}

var (
	// IntactStatus is one-hot over the Intact condition's status.
	IntactStatus = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "intact_status",
		Help: `Status of the Intact condition of a ModelWatermark, one-hot: the series whose
status label equals the condition's status is 1, the other two are 0. status="False" means a
verification found at least one trigger with a changed label (tampering).`,
	}, []string{"namespace", "name", "status"})

	// LastSuccessfulVerification is the Unix time of the newest verdict.
	LastSuccessfulVerification = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "last_successful_verification_timestamp_seconds",
		Help: `Unix time at which the newest verification of a ModelWatermark that reached a
verdict (intact or tampered) finished. Absent until the first verdict.`,
	}, []string{"namespace", "name"})

	// VerificationPeriod lets a stale-verification alert compare against each resource's own period.
	VerificationPeriod = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "verification_period_seconds",
		Help:      `spec.verification.periodSeconds of a ModelWatermark.`,
	}, []string{"namespace", "name"})

	// MismatchedTriggers is the mismatch count of the newest verdict.
	MismatchedTriggers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "mismatched_triggers",
		Help: `Number of triggers whose label differed from the key label in the newest
verification of a ModelWatermark that reached a verdict. Any value above 0 means tampering.`,
	}, []string{"namespace", "name"})

	// ReconcileErrors counts reconciles of a ModelWatermark that returned an error.
	ReconcileErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "reconcile_errors_total",
		Help: `Number of reconciles of a ModelWatermark that ended in an error and were retried
(API errors, conflicts). Specification problems are reported in conditions, not here.`,
	}, []string{"namespace", "name"})
)

var registerOnce sync.Once

// Register adds the operator's series to reg (the manager passes controller-runtime's
// metrics.Registry). Calling it again is a no-op.
func Register(reg prometheus.Registerer) {
	registerOnce.Do(func() {
		reg.MustRegister(IntactStatus, LastSuccessfulVerification, VerificationPeriod,
			MismatchedTriggers, ReconcileErrors)
	})
}

// Observation is what the metrics say about one ModelWatermark.
type Observation struct {
	// IntactStatus is "True", "False" or "Unknown".
	IntactStatus string
	// PeriodSeconds is the verification period.
	PeriodSeconds int32
	// HasVerdict is false until a verification reached a verdict; then the two fields below
	// are exported.
	HasVerdict bool
	// LastVerdictUnix is when the newest verdict finished.
	LastVerdictUnix float64
	// Mismatched is the newest verdict's mismatch count.
	Mismatched int32
}

// Report sets the series of one ModelWatermark.
func Report(ns, name string, o Observation) {
	for _, s := range conditionStatuses {
		v := 0.0
		if s == o.IntactStatus {
			v = 1
		}
		IntactStatus.WithLabelValues(ns, name, s).Set(v)
	}
	VerificationPeriod.WithLabelValues(ns, name).Set(float64(o.PeriodSeconds))
	if o.HasVerdict {
		LastSuccessfulVerification.WithLabelValues(ns, name).Set(o.LastVerdictUnix)
		MismatchedTriggers.WithLabelValues(ns, name).Set(float64(o.Mismatched))
	} else {
		LastSuccessfulVerification.DeleteLabelValues(ns, name)
		MismatchedTriggers.DeleteLabelValues(ns, name)
	}
}

// ReconcileError counts one failed reconcile of a ModelWatermark.
func ReconcileError(ns, name string) {
	ReconcileErrors.WithLabelValues(ns, name).Inc()
}

// Forget deletes every series of a ModelWatermark that no longer exists, so that a deleted
// resource neither keeps alerting nor shows as stale.
func Forget(ns, name string) {
	labels := prometheus.Labels{"namespace": ns, "name": name}
	IntactStatus.DeletePartialMatch(labels)
	LastSuccessfulVerification.DeletePartialMatch(labels)
	VerificationPeriod.DeletePartialMatch(labels)
	MismatchedTriggers.DeletePartialMatch(labels)
	ReconcileErrors.DeletePartialMatch(labels)
}
