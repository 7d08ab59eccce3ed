// Package metrics holds bulkd's own Prometheus metrics: one struct of typed
// collectors, built on the registry that main makes and passed to whoever
// records (the HTTP layer, the service, the workers), never package
// globals. Names follow Prometheus' conventions: the bulkd_ prefix, _total
// for counters, _seconds for durations; no label carries an id, so the
// number of series stays bounded.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Labels' bounded values: the statuses a bulk finishes in, its modes, the
// phases of an import, the outcomes of a delivery attempt.
var (
	FinishedStatuses = []string{"completed", "failed", "canceled"}
	Modes            = []string{"create", "upsert"}
	Phases           = []string{PhaseParse, PhaseLock, PhasePlan, PhaseWrite, PhaseResults}
	Outcomes         = []string{OutcomeDelivered, OutcomeRetrying, OutcomeAbandoned}
)

// The phases of an import (bulkd_import_phase_duration_seconds{phase}).
const (
	PhaseParse   = "parse"   // read the rows as submitted and parse them
	PhaseLock    = "lock"    // take the organization's lock
	PhasePlan    = "plan"    // look up what exists, plan the writes
	PhaseWrite   = "write"   // write the records
	PhaseResults = "results" // store every row's result, complete the bulk, commit
)

// The outcomes of a delivery attempt (bulkd_deliveries_total{outcome}).
const (
	OutcomeDelivered = "delivered" // made
	OutcomeRetrying  = "retrying"  // not made; the task retries
	OutcomeAbandoned = "abandoned" // not made, and never will be: refused for good, gone, out of retries
)

// Metrics are bulkd's collectors.
type Metrics struct {
	// HTTPRequests counts API requests by route pattern, method and status;
	// HTTPDuration times them.
	HTTPRequests *prometheus.CounterVec
	HTTPDuration *prometheus.HistogramVec
	// BulksSubmitted counts bulks stored by POST /api/v1/bulk (a replay is
	// not a new bulk), by mode.
	BulksSubmitted *prometheus.CounterVec
	// BulksFinished counts bulks that ended, by status and mode.
	BulksFinished *prometheus.CounterVec
	// RowsImported counts the rows written by imports: rows that created or
	// updated a record (not an upsert's unchanged rows, which write nothing,
	// nor those of validate-only or rolled-back imports); RowsFailed the
	// rows that failed validation or planning.
	RowsImported prometheus.Counter
	RowsFailed   prometheus.Counter
	// ImportDuration times an import from its start to its commit, by
	// mode; ImportPhaseDuration each of its phases.
	ImportDuration      *prometheus.HistogramVec
	ImportPhaseDuration *prometheus.HistogramVec
	// ImportsGaveWay counts import attempts that found another import of
	// the organization running and went back to the queue.
	ImportsGaveWay prometheus.Counter
	// Deliveries counts delivery attempts by channel, outcome and attempt
	// number (bounded by the channel's retries).
	Deliveries *prometheus.CounterVec
	// IdempotentReplays counts submissions answered from an earlier one with
	// the same Idempotency-Key.
	IdempotentReplays prometheus.Counter
	// RateLimited counts requests answered 429 by the per-key limit.
	RateLimited prometheus.Counter
	// WaitingClients is how many requests wait (?wait=) for a bulk to end
	// now.
	WaitingClients prometheus.Gauge
}

// durationBuckets span a request of a millisecond to an import of ten
// minutes (tasks' timeout).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// New builds the collectors and registers them on reg; with a nil reg they
// are registered nowhere (for tests and tools that record without serving).
// The series of every known label value start at zero, so that a rate over
// them exists before the first event.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkd_http_requests_total", Help: "HTTP requests answered, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bulkd_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route pattern, method and status.",
			Buckets: durationBuckets,
		}, []string{"route", "method", "status"}),
		BulksSubmitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkd_bulks_submitted_total", Help: "Bulks submitted and stored, by mode.",
		}, []string{"mode"}),
		BulksFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkd_bulks_finished_total", Help: "Bulks that ended, by status (completed, failed, canceled) and mode.",
		}, []string{"status", "mode"}),
		RowsImported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulkd_rows_imported_total", Help: "Rows written by imports: created or updated a record (unchanged rows, validate-only and rolled-back imports write none).",
		}),
		RowsFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulkd_rows_failed_total", Help: "Rows that failed, each reported in its bulk's errors.",
		}),
		ImportDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bulkd_import_duration_seconds", Help: "Time an import took, from its start to its commit, by mode.",
			Buckets: durationBuckets,
		}, []string{"mode"}),
		ImportPhaseDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bulkd_import_phase_duration_seconds", Help: "Time each phase of an import took: parse, lock, plan, write, results.",
			Buckets: durationBuckets,
		}, []string{"phase"}),
		ImportsGaveWay: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulkd_imports_gave_way_total", Help: "Import attempts that went back to the queue because another import of the organization was running.",
		}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkd_deliveries_total", Help: "Delivery attempts (emails, webhooks), by channel, outcome (delivered, retrying, abandoned) and attempt number.",
		}, []string{"channel", "outcome", "attempt"}),
		IdempotentReplays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulkd_idempotent_replays_total", Help: "Submissions answered from an earlier one with the same Idempotency-Key.",
		}),
		RateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulkd_rate_limited_requests_total", Help: "API requests refused with 429 by the per-key rate limit.",
		}),
		WaitingClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulkd_waiting_clients", Help: "Requests waiting (?wait=) for a bulk to end.",
		}),
	}
	for _, mode := range Modes {
		m.BulksSubmitted.WithLabelValues(mode)
		m.ImportDuration.WithLabelValues(mode)
		for _, status := range FinishedStatuses {
			m.BulksFinished.WithLabelValues(status, mode)
		}
	}
	for _, phase := range Phases {
		m.ImportPhaseDuration.WithLabelValues(phase)
	}
	if reg != nil {
		reg.MustRegister(m.HTTPRequests, m.HTTPDuration, m.BulksSubmitted, m.BulksFinished, m.RowsImported, m.RowsFailed,
			m.ImportDuration, m.ImportPhaseDuration, m.ImportsGaveWay, m.Deliveries, m.IdempotentReplays, m.RateLimited,
			m.WaitingClients)
	}
	return m
}

// Or is m, or collectors registered nowhere when m is nil: what a service
// built without metrics (a test, a one-off command) records into.
func Or(m *Metrics) *Metrics {
	if m == nil {
		return New(nil)
	}
	return m
}

// ObserveRequest records one answered HTTP request. route is the route's
// pattern ("/api/v1/bulk/:id"), never the path asked for; "" (no route
// matched) is recorded as "unmatched", and a method outside HTTP's own as
// "other", so that no client can add series.
func (m *Metrics) ObserveRequest(route, method string, status int, took time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
	default:
		method = "other"
	}
	code := strconv.Itoa(status)
	m.HTTPRequests.WithLabelValues(route, method, code).Inc()
	m.HTTPDuration.WithLabelValues(route, method, code).Observe(took.Seconds())
}

// StartDeliveries makes the channel's delivery series for attempts 1 to
// attempts, every outcome, start at zero: an alert's increase() over a
// series that first appears at 1 sees no increase, and would miss the
// first abandoned delivery of each attempt number.
func (m *Metrics) StartDeliveries(channel string, attempts int) {
	for attempt := 1; attempt <= attempts; attempt++ {
		for _, outcome := range Outcomes {
			m.Deliveries.WithLabelValues(channel, outcome, strconv.Itoa(attempt))
		}
	}
}

// ObserveDelivery records one attempt at a delivery (attempt counts from 1).
func (m *Metrics) ObserveDelivery(channel, outcome string, attempt int) {
	m.Deliveries.WithLabelValues(channel, outcome, strconv.Itoa(attempt)).Inc()
}

// Unchecked registers c without describing it: the registry then asks it
// for metrics only when scraped. asynq's queue collector describes itself
// by collecting, which would query Redis at registration, as the process
// starts (and wait there while Redis is down).
func Unchecked(c prometheus.Collector) prometheus.Collector { return unchecked{c} }

type unchecked struct{ prometheus.Collector }

// Describe sends no description, which makes the collector unchecked.
func (unchecked) Describe(chan<- *prometheus.Desc) {}
