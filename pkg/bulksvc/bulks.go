// Package bulksvc is bulkd's service layer: the policy of submitting and
// importing bulks, over the store and the task queue. The HTTP handlers, the
// queue workers, the tests and the benchmarks all call it, so the import
// pipeline is written once.
package bulksvc

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/logattr"
	"github.com/bulkd/bulkd/pkg/metrics"
	"github.com/bulkd/bulkd/pkg/page"
	"github.com/bulkd/bulkd/pkg/store"
)

// EnqueueTimeout bounds how long a submission waits for the queue: the bulk
// is durable in Postgres by then, and the reconciler queues it if Redis is
// down or slow, so the client is not kept waiting on Redis.
const EnqueueTimeout = time.Second

// Queue is where the service queues work (workers/tasks.Queue in bulkd).
// Enqueuing a task that is queued already is success.
type Queue interface {
	EnqueueImport(ctx context.Context, bulkID uuid.UUID) error
	// EnqueueDelivery queues a delivery of the outbox on its channel.
	EnqueueDelivery(ctx context.Context, deliveryID uuid.UUID, channel string) error
	// CancelImport removes a bulk's import task if it waits in the queue.
	CancelImport(ctx context.Context, bulkID uuid.UUID) error
	// RunImportNow makes a bulk's import task that waits for a later time
	// run as soon as a worker is free, and says whether there was one.
	RunImportNow(ctx context.Context, bulkID uuid.UUID) (bool, error)
}

// Service submits and imports bulks.
type Service struct {
	store   *store.Store
	queue   Queue
	log     *slog.Logger
	metrics *metrics.Metrics
}

// New returns the service, which records what happens to bulks (submitted,
// finished, their rows, the imports' phases) into m. A nil queue queues
// nothing, for tests and benchmarks that run the import step alone; a nil m
// records nowhere.
func New(s *store.Store, q Queue, log *slog.Logger, m *metrics.Metrics) *Service {
	return &Service{store: s, queue: q, log: log, metrics: metrics.Or(m)}
}

// Submission is one POST /api/v1/bulk, as the store keeps it: its
// organization, options and rows as submitted, and when the client sent an
// Idempotency-Key, the key and the request's fingerprint (ReadSubmission).
type Submission = store.NewBulk

// ReadSubmission reads the body of a submission, the JSON array of its
// rows, for the organization orgID with the options opts. With an
// idempotency key ("" for none) the submission carries the fingerprint of
// the request, which is what makes two submissions the same one: a retry
// with the key and the same options and body answers as the first time,
// while the key with another request is store.ErrIdempotencyKeyReused. The
// body is hashed as it streams by, as given (decoded, when it was sent
// compressed).
func ReadSubmission(orgID uuid.UUID, opts bulk.Options, idempotencyKey string, body io.Reader) (Submission, error) {
	hash := sha256.New()
	if idempotencyKey != "" {
		hash.Write([]byte(opts.Query() + "\n"))
		body = io.TeeReader(body, hash)
	}
	rows, err := bulk.DecodeSubmission(body)
	if err != nil {
		return Submission{}, err
	}
	sub := Submission{OrganizationID: orgID, Options: opts, Rows: rows}
	if idempotencyKey != "" {
		sub.IdempotencyKey = &store.IdempotencyKey{Key: idempotencyKey, RequestHash: hash.Sum(nil)}
	}
	return sub, nil
}

// Submitted is the outcome of a submission. Replayed says that an earlier
// submission with the same idempotency key created the bulk.
type Submitted struct {
	Bulk     models.Bulk
	Replayed bool
}

// Submit stores a submission durably and queues its import. If the queue
// cannot be reached within EnqueueTimeout, the bulk stays pending for the
// reconciler and the submission still succeeds. A replay queues the bulk
// again, harmlessly, in case the first attempt could not.
func (s *Service) Submit(ctx context.Context, sub Submission) (Submitted, error) {
	var (
		out Submitted
		err error
	)
	out.Bulk, out.Replayed, err = s.store.CreateBulk(ctx, sub)
	if err != nil {
		return Submitted{}, err
	}
	if out.Replayed {
		s.metrics.IdempotentReplays.Inc()
	} else {
		s.metrics.BulksSubmitted.WithLabelValues(out.Bulk.Mode).Inc()
	}
	if out.Bulk.Status == models.StatusPending && s.queue != nil {
		enqueueCtx, cancel := context.WithTimeout(ctx, EnqueueTimeout)
		defer cancel()
		if err := s.queue.EnqueueImport(enqueueCtx, out.Bulk.ID); err != nil {
			s.log.WarnContext(ctx, "bulk stored but not queued; the reconciler will queue it", "bulk_id", out.Bulk.ID, "err", err)
		}
	}
	return out, nil
}

// ErrNotFound is returned by Import for a bulk that does not exist: retrying
// cannot help.
var ErrNotFound = store.ErrNotFound

// Import is the import pipeline, the one entry point that workers, tests and
// benchmarks call: it marks the bulk processing, loads its rows, parses and
// validates them, plans and writes them with the results of every row in one
// transaction, completes the bulk and queues its notification. It is safe to
// run again on the same bulk, whether an earlier run was interrupted or
// finished: a finished bulk is left as it is (its notification is queued
// again, which the task id keeps single).
//
// One organization's bulks import one at a time, and an import never waits
// for another: while one imports, another of its organization is
// ErrNotItsTurn at once (before it is even marked processing, and again
// when it tries the lock), for its task to come back later. The import that
// ends moves the oldest waiting bulk's task to the front, so that the
// organization's bulks usually import in the order they were submitted.
func (s *Service) Import(ctx context.Context, id uuid.UUID) (models.Bulk, error) {
	ctx = logattr.With(ctx, slog.Any("bulk_id", id))
	orgID, err := s.store.ImportTurn(ctx, id)
	if orgID != uuid.Nil {
		ctx = logattr.With(ctx, slog.Any("organization_id", orgID)) // every line of the import names it
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return models.Bulk{}, fmt.Errorf("bulksvc: import %s: %w", id, ErrNotFound)
		}
		if errors.Is(err, ErrNotItsTurn) {
			s.metrics.ImportsGaveWay.Inc()
		}
		return models.Bulk{}, fmt.Errorf("bulksvc: import %s: %w", id, err)
	}
	b, err := s.store.StartBulk(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return models.Bulk{}, fmt.Errorf("bulksvc: import %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return models.Bulk{}, fmt.Errorf("bulksvc: import %s: %w", id, err)
	}
	if b.Status == models.StatusProcessing {
		opts := ImportOptions(b)
		res, err := s.store.Import(ctx, b, func(ctx context.Context) ([]*bulk.Row, error) {
			raw, err := s.store.BulkRows(ctx, b.OrganizationID, id)
			if err != nil {
				return nil, err
			}
			return bulk.ParseRows(raw, opts), nil
		}, opts)
		if errors.Is(err, ErrNotItsTurn) {
			s.metrics.ImportsGaveWay.Inc()
		}
		if err != nil {
			return models.Bulk{}, fmt.Errorf("bulksvc: import %s: %w", id, err)
		}
		b = res.Bulk
		if res.Plan == nil { // canceled, or finished by a duplicate task, meanwhile
			s.log.InfoContext(ctx, "bulk import stopped: the bulk finished meanwhile", "bulk_id", id,
				"organization_id", b.OrganizationID, "status", b.Status)
		} else {
			s.imported(b, res.Timings)
			s.log.InfoContext(ctx, "bulk imported", "bulk_id", id, "organization_id", b.OrganizationID,
				"rows", b.Count, "rows_succeeded", b.RowsSucceeded, "rows_failed", b.RowsFailed,
				"duration_ms", res.Timings.Total.Milliseconds())
		}
	}
	// A retry after a crash between commit and enqueue lands here too: queue
	// the deliveries of any finished bulk still to make; their task ids keep
	// them single.
	if b.Status.Finished() {
		if err := s.queueDeliveries(ctx, id); err != nil {
			return b, fmt.Errorf("bulksvc: import %s: %w", id, err)
		}
		s.handOff(ctx, id)
	}
	return b, nil
}

// imported records a bulk that an import completed: its end, its rows and
// how long the import and each of its phases took.
func (s *Service) imported(b models.Bulk, t store.ImportTimings) {
	m := s.metrics
	m.BulksFinished.WithLabelValues(string(b.Status), b.Mode).Inc()
	if !b.ValidateOnly && !b.RolledBack {
		// Rows written: an upsert's unchanged rows succeed but write nothing.
		m.RowsImported.Add(float64(b.RowsCreated + b.RowsUpdated))
	}
	m.RowsFailed.Add(float64(b.RowsFailed))
	m.ImportDuration.WithLabelValues(b.Mode).Observe(t.Total.Seconds())
	for phase, d := range map[string]time.Duration{
		metrics.PhaseLock: t.Lock, metrics.PhaseParse: t.Parse, metrics.PhasePlan: t.Plan,
		metrics.PhaseWrite: t.Write, metrics.PhaseResults: t.Results,
	} {
		m.ImportPhaseDuration.WithLabelValues(phase).Observe(d.Seconds())
	}
}

// ErrNotItsTurn is Import's answer for a bulk that is not next in its
// organization's line: nothing was done, and its import is to run later.
var ErrNotItsTurn = store.ErrNotItsTurn

// handOff moves the import of the organization's oldest waiting bulk, after
// the bulk ended that just finished, to the front of the queue, so that it
// starts as soon as a worker is free rather than when its task's wait runs
// out. It is best effort: the wait is the fallback.
func (s *Service) handOff(ctx context.Context, ended uuid.UUID) {
	if s.queue == nil {
		return
	}
	queueCtx, cancel := context.WithTimeout(ctx, EnqueueTimeout)
	defer cancel()
	// The oldest few: the oldest may have no task waiting (Redis lost it, or
	// it is running a retry), and the next then goes first.
	next, err := s.store.NextInLine(ctx, ended, handOffLook)
	for _, id := range next {
		var moved bool
		if moved, err = s.queue.RunImportNow(queueCtx, id); err != nil || moved {
			break
		}
	}
	if err != nil {
		s.log.WarnContext(ctx, "the organization's next bulk not moved up; it starts when its wait ends", "bulk_id", ended, "err", err)
	}
}

// handOffLook is how many of the organization's oldest unfinished bulks a
// hand-off looks at.
const handOffLook = 5

// queueDeliveries queues the tasks of a bulk's deliveries still to make.
func (s *Service) queueDeliveries(ctx context.Context, bulkID uuid.UUID) error {
	if s.queue == nil {
		return nil
	}
	pending, err := s.store.PendingDeliveries(ctx, bulkID)
	if err != nil {
		return err
	}
	for _, d := range pending {
		if err := s.queue.EnqueueDelivery(ctx, d.ID, d.Channel); err != nil {
			return err
		}
	}
	return nil
}

// ErrNotCancelable is a cancel of a bulk that has finished; it carries the
// bulk.
type ErrNotCancelable = store.ErrNotCancelable

// Cancel cancels one of the organization's bulks that is pending (its task
// leaves the queue) or processing (the import stops at its next check and
// rolls back, so that nothing of it is written). A bulk that has finished is
// ErrNotCancelable. The cancel is told by webhook, not by email; the bulk
// is never imported after it.
func (s *Service) Cancel(ctx context.Context, orgID, id uuid.UUID) (models.Bulk, error) {
	b, err := s.store.CancelBulk(ctx, orgID, id)
	if err != nil {
		return models.Bulk{}, err
	}
	s.metrics.BulksFinished.WithLabelValues(string(models.StatusCanceled), b.Mode).Inc()
	if s.queue != nil {
		// Best effort within the enqueue timeout: an import task left in the
		// queue finds the bulk canceled and does nothing.
		queueCtx, cancel := context.WithTimeout(ctx, EnqueueTimeout)
		defer cancel()
		if err := s.queue.CancelImport(queueCtx, id); err != nil {
			s.log.WarnContext(ctx, "canceled bulk's task not removed from the queue; it will find the bulk canceled", "bulk_id", id, "err", err)
		}
		if err := s.queueDeliveries(queueCtx, id); err != nil {
			s.log.WarnContext(ctx, "canceled bulk's webhook not queued; the reconciler will queue it", "bulk_id", id, "err", err)
		}
		s.handOff(ctx, id)
	}
	return b, nil
}

// ImportOptions are the options a bulk's import runs with: those it was
// submitted with, and as the day that bounds its dates (a date of birth must
// be before it) the day it was submitted, so that every attempt of its
// import, whenever it runs, validates the same way.
func ImportOptions(b models.Bulk) bulk.Options {
	return bulk.Options{
		Mode: bulk.Mode(b.Mode), Atomic: b.Atomic, ValidateOnly: b.ValidateOnly, Strict: b.Strict,
		Today: b.CreatedAt.UTC().Truncate(24 * time.Hour),
	}
}

// Failed is what Fail did: whether it failed the bulk (false: it had
// finished already), and the bulk's organization (whether or not).
type Failed = store.Failed

// Fail marks an unfinished bulk failed with a reason the client reads, and
// queues the deliveries that tell of it. A finished bulk is left as it is.
func (s *Service) Fail(ctx context.Context, id uuid.UUID, reason string) (Failed, error) {
	f, err := s.store.FailBulk(ctx, id, reason)
	if err != nil {
		return Failed{}, fmt.Errorf("bulksvc: fail %s: %w", id, err)
	}
	if f.Failed {
		s.metrics.BulksFinished.WithLabelValues(string(models.StatusFailed), f.Mode).Inc()
	}
	if f.OrganizationID != uuid.Nil {
		ctx = logattr.With(ctx, slog.Any("organization_id", f.OrganizationID))
	}
	if err := s.queueDeliveries(ctx, id); err != nil {
		return f, fmt.Errorf("bulksvc: fail %s: %w", id, err)
	}
	s.handOff(ctx, id)
	return f, nil
}

// Bulk returns one of the organization's bulks; another organization's is
// store.ErrNotFound.
func (s *Service) Bulk(ctx context.Context, orgID, id uuid.UUID) (models.Bulk, error) {
	return s.store.Bulk(ctx, orgID, id)
}

// ErrReportExpired is a bulk whose rows as submitted and results were
// erased after the retention period: its errors and results are gone, its
// status and counts stay. It carries the bulk.
type ErrReportExpired = store.ErrReportExpired

// ReportBulk returns one of the organization's bulks whose report (its
// errors, its results) is to be read: ErrReportExpired once retention has
// erased it, so that an erased report is never answered as an empty one.
// Another organization's bulk is store.ErrNotFound.
func (s *Service) ReportBulk(ctx context.Context, orgID, id uuid.UUID) (models.Bulk, error) {
	b, err := s.store.Bulk(ctx, orgID, id)
	if err != nil {
		return models.Bulk{}, err
	}
	if b.ReportExpiredAt != nil {
		return models.Bulk{}, ErrReportExpired{Bulk: b}
	}
	return b, nil
}

// ErrorsPageSize is how many failed rows Errors reads at a time.
const ErrorsPageSize = 100

// Errors returns the errors report of the organization's bulk: its failed
// rows after row number after, in order, ErrorsPageSize at most, so that a
// caller reads a large report a page at a time, never all of it at once.
// A row whose stored payload or report cannot be sent (not JSON in UTF-8)
// is answered as unreadable, so that one such row cannot hide the others.
// Another organization's bulk is store.ErrNotFound.
func (s *Service) Errors(ctx context.Context, orgID, id uuid.UUID, after int) ([]ErrorRow, error) {
	rows, err := s.store.BulkErrors(ctx, orgID, id, after, ErrorsPageSize)
	if err != nil {
		return nil, err
	}
	out := make([]ErrorRow, len(rows))
	for i, r := range rows {
		out[i] = ErrorRow{ID: r.Row, Payload: r.Payload, Errors: r.Errors}
		if !sendable(r.Payload) || !sendable(r.Errors) {
			s.log.WarnContext(ctx, "a row's stored errors cannot be read; answered as unreadable", "bulk_id", id, "row", r.Row)
			out[i] = ErrorRow{ID: r.Row, Errors: unreadableErrors}
		}
	}
	return out, nil
}

// ResultsChunk is how many rows' results a caller reads at a time.
const ResultsChunk = 100

// ResultsSize bounds the pages of results clients read (per_page).
var ResultsSize = page.Size{Default: 100, Max: 1000}

// Results returns the results of rows offset+1 to offset+limit of the
// organization's bulk, in order, each a bulk.ResultRow as stored. A row
// whose stored result cannot be sent is answered as a failed row that says
// so. Another organization's bulk is store.ErrNotFound, one whose report
// expired ErrReportExpired.
func (s *Service) Results(ctx context.Context, orgID, id uuid.UUID, offset, limit int) ([]json.RawMessage, error) {
	if _, err := s.ReportBulk(ctx, orgID, id); err != nil {
		return nil, err
	}
	rows, err := s.store.BulkResults(ctx, orgID, id, offset, limit)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(rows))
	for i, r := range rows {
		out[i] = r.Result
		if !sendable(r.Result) {
			s.log.WarnContext(ctx, "a row's stored result cannot be read; answered as unreadable", "bulk_id", id, "row", r.Row)
			out[i] = unreadableResult(r.Row)
		}
	}
	return out, nil
}

// sendable tells whether stored bytes are one JSON value in UTF-8. An
// encoder refuses some valid JSON (nested very deep), and json.Valid the
// same.
func sendable(b []byte) bool { return utf8.Valid(b) && json.Valid(b) }

// unreadableErrors is the report of a row whose stored errors or payload
// cannot be sent.
var unreadableErrors, _ = json.Marshal(map[string][]string{"report": {"The errors of this row could not be read."}})

// unreadableResult is the result of a row whose stored result cannot be
// sent: failed, with nothing written that can be told, and a report that
// says why.
func unreadableResult(row int) json.RawMessage {
	b, _ := json.Marshal(struct {
		bulk.ResultRow
		Errors map[string][]string `json:"errors"` // in place of the row's
	}{
		ResultRow: bulk.ResultRow{Row: row, Status: bulk.RowFailed, ParentDebtAccounts: []bulk.ResultObject{}, DebtAccounts: []bulk.ResultObject{}},
		Errors:    map[string][]string{"report": {"The result of this row could not be read."}},
	})
	return b
}
