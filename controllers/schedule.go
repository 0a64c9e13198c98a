package controllers

import (
	"time"

	fragilev1alpha1 "github.com/fragile-operator/fragile-operator/api/v1alpha1"
)

// verificationPeriod is spec.verification.periodSeconds as a duration. The API server fills
// in the CRD default; the fallback covers objects stored before the default existed.
func verificationPeriod(spec fragilev1alpha1.VerificationSpec) time.Duration {
	seconds := spec.PeriodSeconds
	if seconds <= 0 {
		seconds = fragilev1alpha1.DefaultVerificationPeriodSeconds
	}
	return time.Duration(seconds) * time.Second
}

// verificationPlan is what the schedule asks of one reconcile.
type verificationPlan struct {
	// start is the schedule slot a verification Job should be started for now; zero when none
	// is due or one is still running.
	start time.Time
	// next is when the verification after the running (or just started) one is due, or, when
	// none runs, when the next one is due.
	next time.Time
}

// planVerification is the verification schedule as arithmetic on slots, like CronJob's: slots
// are one period apart, counted from the newest slot a Job filled (lastSlot), or from the end
// of training (trainedAt) before the first. A slot is started only when no verification runs.
// Slots missed while the operator was down are caught up with one Job, in the newest slot that
// has passed, so a long outage does not start a burst of Jobs. Slots are whole seconds: they
// name Jobs and travel in an RFC 3339 annotation.
func planVerification(period time.Duration, trainedAt, lastSlot time.Time, running bool, now time.Time) verificationPlan {
	due := trainedAt
	if !lastSlot.IsZero() {
		due = lastSlot.Add(period)
	}
	if running || now.Before(due) {
		return verificationPlan{next: due}
	}
	missed := now.Sub(due) / period
	start := due.Add(missed * period).Truncate(time.Second)
	return verificationPlan{start: start, next: start.Add(period)}
}
