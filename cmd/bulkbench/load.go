package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulkd/bulkd/pkg/bulkgen"
	"github.com/bulkd/bulkd/pkg/bulksvc"
)

// api is a bulkd's HTTP API as a client sees it.
type api struct {
	base, key string
	http      *http.Client
}

func newAPI(base, key string, clients int) *api {
	return &api{base: base, key: key, http: &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			// Every client and the poller keep their connection: a benchmark
			// of the service, not of TCP handshakes.
			MaxIdleConns: clients + 8, MaxIdleConnsPerHost: clients + 8, IdleConnTimeout: time.Minute,
			DisableCompression: true,
		},
	}}
}

// withKey is the same API, connections shared, with another key: another
// organization's.
func (a *api) withKey(key string) *api {
	c := *a
	c.key = key
	return &c
}

// bulkState is a bulk as GET /api/v1/bulk/{id} shows it.
type bulkState struct {
	BulkID        string     `json:"bulk_id"`
	Count         int        `json:"count"`
	Status        string     `json:"status"`
	RowsSucceeded int        `json:"rows_succeeded"`
	RowsFailed    int        `json:"rows_failed"`
	RolledBack    bool       `json:"rolled_back"` // atomic: nothing written (absent from bulkds before the options)
	FailureReason *string    `json:"failure_reason"`
	CreatedAt     time.Time  `json:"created_at"`
	StartedAt     *time.Time `json:"started_at"`
	CompletedAt   *time.Time `json:"completed_at"`
}

func (s bulkState) finished() bool { return s.Status == "completed" || s.Status == "failed" }

// errRetry is an answer to try again after: 429 and 503 say so.
type errRetry struct {
	status int
	after  time.Duration
}

func (e *errRetry) Error() string { return fmt.Sprintf("HTTP %d, retry after %s", e.status, e.after) }

// do sends one request and decodes the data of a 2xx answer into out.
func (a *api) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		return &errRetry{status: resp.StatusCode, after: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	case resp.StatusCode/100 != 2:
		// The error body is {"message","errors"}: no row data, safe to show.
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b[:min(len(b), 300)]))
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil || len(env.Data) == 0 {
		return fmt.Errorf("%s %s: HTTP %d with an answer that is not {\"data\": ...}", method, path, resp.StatusCode)
	}
	return json.Unmarshal(env.Data, out)
}

// results reads every row's status of a finished bulk, in order, a page
// of 1000 at a time (one page for a bulk of up to 1000 rows).
func (a *api) results(ctx context.Context, id string) (statuses []string, totals bulksvc.ResultsPage, err error) {
	path := "/api/v1/bulk/" + id + "/results?per_page=1000"
	for path != "" {
		var page bulksvc.ResultsPage
		for {
			err = a.getJSON(ctx, path, &page)
			var retry *errRetry
			if !errors.As(err, &retry) {
				break
			}
			if err := sleep(ctx, retry.after); err != nil {
				return nil, totals, err
			}
		}
		if err != nil {
			return nil, totals, err
		}
		for _, r := range page.Data {
			statuses = append(statuses, string(r.Status))
		}
		totals, path = page, ""
		if page.Links.Next != nil {
			path = *page.Links.Next
		}
	}
	return statuses, totals, nil
}

// getJSON GETs path and decodes the whole answer into out.
func (a *api) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		return &errRetry{status: resp.StatusCode, after: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	case resp.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// retryAfter reads a Retry-After header (seconds or an HTTP date); without
// one, a second.
func retryAfter(v string, now time.Time) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, time.Minute)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), time.Minute)
	}
	return time.Second
}

// progress is what the load has done so far, shared by the clients, the
// poller, the progress bar and the memory sampler.
type progress struct {
	bulks, rows   int64
	accepted      atomic.Int64
	completed     atomic.Int64
	completedRows atomic.Int64
	started       atomic.Int64 // unix nanoseconds of the first submit; 0 before
	lastChange    atomic.Int64 // unix nanoseconds of the last accept or completion
}

// fraction is the share of rows whose bulk completed.
func (p *progress) fraction() float64 { return float64(p.completedRows.Load()) / float64(p.rows) }

func (p *progress) touch() { p.lastChange.Store(time.Now().UnixNano()) }

// submitted is one accepted bulk.
type submitted struct {
	index    int // in the run
	id       string
	accepted time.Time
}

// loadResult is what the clients and the poller saw.
type loadResult struct {
	start, end time.Time
	latencies  []time.Duration // of the accepted POSTs
	completion []time.Duration // from a bulk's 202 to its completion seen, within a poll
	retries    map[string]int  // "429", "503": answers retried
	finished   []bulkState     // every bulk's last state, in submission order
	ids        []string        // every bulk's id, by index in the run
}

// phase is one pass of submissions over the run's bulks: the bodies and the
// query string they are posted with.
type phase struct {
	gen   func(b int) bulkgen.Options
	query string
}

// runLoad submits every bulk of the phase from cfg.clients clients and polls
// them until all are finished.
// Bulk b is submitted, and polled, with apis[cfg.orgOf(b)]: its
// organization's key.
func runLoad(ctx context.Context, cfg config, apis []*api, prog *progress, ph phase) (*loadResult, error) {
	res := &loadResult{retries: map[string]int{}, finished: make([]bulkState, cfg.bulks), ids: make([]string, cfg.bulks)}
	prog.touch() // the stall clock starts now
	g, ctx := errgroup.WithContext(ctx)

	type job struct {
		index int
		body  []byte
	}
	// The generator runs just ahead of the clients: a few bodies in memory,
	// never the whole run.
	jobs := make(chan job, cfg.clients)
	g.Go(func() error {
		defer close(jobs)
		for b := range cfg.bulks {
			select {
			case jobs <- job{b, bulkgen.Body(ph.gen(b))}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})

	var (
		mu          sync.Mutex
		outstanding []submitted // accepted, not seen finished, in accept order
	)
	// waitToRetry counts a 429 or 503 answer and sleeps out its Retry-After;
	// retried tells whether err was one.
	waitToRetry := func(ctx context.Context, err error) (retried bool, _ error) {
		var retry *errRetry
		if !errors.As(err, &retry) {
			return false, nil
		}
		mu.Lock()
		res.retries[strconv.Itoa(retry.status)]++
		mu.Unlock()
		return true, sleep(ctx, retry.after)
	}
	// With --max-pending, a client waits for a slot before submitting and the
	// poller frees one per finished bulk: clients that pace themselves on the
	// service instead of piling bulks up in its queue.
	var slots chan struct{}
	if cfg.maxPending > 0 {
		slots = make(chan struct{}, cfg.maxPending)
	}
	for range cfg.clients {
		g.Go(func() error {
			for j := range jobs {
				if slots != nil {
					select {
					case slots <- struct{}{}:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				prog.started.CompareAndSwap(0, time.Now().UnixNano())
				var acc bulkState
				var latency time.Duration
				for {
					t0 := time.Now()
					err := apis[cfg.orgOf(j.index)].do(ctx, http.MethodPost, "/api/v1/bulk"+ph.query, j.body, &acc)
					latency = time.Since(t0)
					if retried, err := waitToRetry(ctx, err); retried || err != nil {
						if err != nil {
							return err
						}
						continue
					}
					if err != nil {
						return fmt.Errorf("submit bulk %d: %w", j.index, err)
					}
					break
				}
				if acc.BulkID == "" {
					return fmt.Errorf("submit bulk %d: the answer has no bulk_id", j.index)
				}
				mu.Lock()
				res.ids[j.index] = acc.BulkID
				outstanding = append(outstanding, submitted{index: j.index, id: acc.BulkID, accepted: time.Now()})
				res.latencies = append(res.latencies, latency)
				mu.Unlock()
				prog.accepted.Add(1)
				prog.touch()
			}
			return nil
		})
	}
	// One poller for every bulk: each tick it walks the unfinished bulks in
	// the order they were accepted, which is about the order they import in,
	// and stops at the second one still running. A bulk finishing is seen
	// within a tick, at a few requests per tick whatever the backlog.
	g.Go(func() error {
		t := time.NewTicker(cfg.pollEvery)
		defer t.Stop()
		done := 0
		for done < cfg.bulks {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
			if last := prog.lastChange.Load(); last != 0 && time.Since(time.Unix(0, last)) > cfg.stall {
				return fmt.Errorf("no bulk accepted or completed for %s (%d of %d completed): is a worker running?", cfg.stall, done, cfg.bulks)
			}
			mu.Lock()
			pending := append([]submitted(nil), outstanding...)
			mu.Unlock()
			seen := map[string]bool{}
			running := 0
			for _, s := range pending {
				var st bulkState
				err := apis[cfg.orgOf(s.index)].do(ctx, http.MethodGet, "/api/v1/bulk/"+s.id, nil, &st)
				if retried, err := waitToRetry(ctx, err); retried || err != nil {
					if err != nil {
						return err
					}
					break
				}
				if err != nil {
					return fmt.Errorf("poll bulk %d: %w", s.index, err)
				}
				if !st.finished() {
					if running++; running == 2 {
						break
					}
					continue
				}
				seen[s.id] = true
				if slots != nil {
					<-slots
				}
				res.finished[s.index] = st
				res.end = time.Now()
				res.completion = append(res.completion, res.end.Sub(s.accepted))
				done++
				prog.completed.Add(1)
				prog.completedRows.Add(int64(st.Count))
				prog.touch()
			}
			if len(seen) > 0 {
				mu.Lock()
				kept := outstanding[:0]
				for _, s := range outstanding {
					if !seen[s.id] {
						kept = append(kept, s)
					}
				}
				outstanding = kept
				mu.Unlock()
			}
		}
		return nil
	})

	if err := g.Wait(); err != nil {
		return nil, err
	}
	res.start = time.Unix(0, prog.started.Load())
	return res, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
