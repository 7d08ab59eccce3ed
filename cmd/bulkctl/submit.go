package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/bulkd/bulkd/pkg/client"
)

// Bounds of one bulk besides --rows: the server's own limits, so that a
// bulk is never refused whole for its size.
const (
	maxBulkBytes    = 15 << 20 // the server takes 16 MiB by default
	maxBulkAccounts = 20000
)

// submitOptions are submit's flags.
type submitOptions struct {
	format       string
	rows         int
	concurrency  int
	mode         string
	atomic       bool
	validateOnly bool
	strict       bool
	wait         bool
	skipBad      bool
	state        string
}

func (o submitOptions) client() client.SubmitOptions {
	return client.SubmitOptions{Mode: client.Mode(o.mode), Atomic: o.atomic, ValidateOnly: o.validateOnly, Strict: o.strict}
}

// run names what shapes the bulks of a file: two runs with the same name
// send the same bulks.
func (o submitOptions) run() string {
	q := url.Values{}
	q.Set("rows", strconv.Itoa(o.rows))
	q.Set("mode", o.mode)
	q.Set("atomic", strconv.FormatBool(o.atomic))
	q.Set("validate_only", strconv.FormatBool(o.validateOnly))
	q.Set("strict", strconv.FormatBool(o.strict))
	q.Set("skip_bad_lines", strconv.FormatBool(o.skipBad))
	return q.Encode()
}

func (c *cli) submit(ctx context.Context, args []string) (int, error) {
	fs, conn := c.flags("submit")
	var o submitOptions
	fs.StringVar(&o.format, "format", "", "json, ndjson or csv (default: from each file's extension)")
	fs.IntVar(&o.rows, "rows", 1000, "rows a bulk, 1 to 1000")
	fs.IntVar(&o.concurrency, "concurrency", 4, "bulks submitted at once")
	fs.StringVar(&o.mode, "mode", "create", "create, or upsert: update what exists")
	fs.BoolVar(&o.atomic, "atomic", false, "a bulk writes nothing if any of its rows fails")
	fs.BoolVar(&o.validateOnly, "validate-only", false, "a dry run: report what would happen, write nothing")
	fs.BoolVar(&o.strict, "strict", false, "unknown keys are errors")
	fs.BoolVar(&o.wait, "wait", false, "wait for every bulk to finish, showing progress, then summarise")
	fs.BoolVar(&o.skipBad, "skip-bad-lines", false, "leave out malformed lines (told on stderr) instead of stopping before anything is sent")
	fs.StringVar(&o.state, "state", "", "the state file that makes a run resumable (default: FILE.bulkctl.json beside the input)")
	files, err := parse(fs, args)
	if err != nil {
		return exitError, err
	}
	switch {
	case len(files) == 0:
		return exitError, errors.New("submit takes one or more files: bulkctl submit FILE…")
	case o.rows < 1 || o.rows > 1000:
		return exitError, errors.New("--rows must be from 1 to 1000")
	case o.concurrency < 1:
		return exitError, errors.New("--concurrency must be at least 1")
	case o.mode != "create" && o.mode != "upsert":
		return exitError, errors.New("--mode must be create or upsert")
	case o.state != "" && len(files) > 1:
		return exitError, errors.New("--state names the state of one file; submit the files one at a time")
	}
	cl, err := c.client(conn)
	if err != nil {
		return exitError, err
	}
	var sums []fileSummary
	for _, f := range files {
		sum, err := c.submitFile(ctx, cl, f, o)
		if err != nil {
			if len(sums) > 0 || sum.accepted > 0 {
				c.summarise(append(sums, sum), o.wait)
			}
			if ctx.Err() != nil {
				return exitError, fmt.Errorf("%s: interrupted; run the same command again to submit what was not accepted", f)
			}
			return exitError, fmt.Errorf("%s: %w", f, err)
		}
		sums = append(sums, sum)
	}
	return c.summarise(sums, o.wait), nil
}

// fileSummary is what a submission of one file did.
type fileSummary struct {
	file                       string
	rows, bulks                int
	accepted, acceptedEarlier  int // bulks
	skipped                    int // bad lines left out
	imported, failed, notTaken int // rows; notTaken: rolled back, or of a failed or canceled bulk
	statuses                   map[client.Status]int
}

// submitFile submits one input: the first pass reads it whole (its hash,
// every row checked, the bulks counted) and sends nothing; the second
// submits the bulks not accepted by an earlier run.
func (c *cli) submitFile(ctx context.Context, cl *client.Client, path string, o submitOptions) (fileSummary, error) {
	sum := fileSummary{file: path, statuses: map[client.Status]int{}}
	format, err := formatOf(path, o.format)
	if err != nil {
		return sum, err
	}
	p, err := planInput(path, format, o)
	if err != nil {
		return sum, err
	}
	sum.rows, sum.bulks, sum.skipped = p.rows, p.bulks, len(p.bad)
	if len(p.bad) > 0 {
		c.tellBadLines(path, p.bad, o.skipBad)
		if !o.skipBad {
			return sum, fmt.Errorf("%d malformed lines; nothing was sent (fix them, or leave them out with --skip-bad-lines)", len(p.bad))
		}
	}
	if p.rows == 0 {
		return sum, errors.New("no rows to submit")
	}
	abs, _ := filepath.Abs(path)
	st, err := loadState(statePath(path, o.state), &state{Input: abs, SHA256: p.sha256, Format: format, Run: o.run(), Rows: p.rows, Bulks: p.bulks})
	if err != nil {
		return sum, err
	}
	earlier := st.entries()
	sum.acceptedEarlier = len(earlier)
	if len(earlier) > 0 {
		fmt.Fprintf(c.stderr, "bulkctl: %s: %d of %d bulks were accepted by an earlier run (%s); submitting the rest\n",
			path, len(earlier), p.bulks, st.path)
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prog := c.newProgress(ctx, path, p.rows, o.wait)
	var w *waiter
	if o.wait {
		w = newWaiter(cl, prog)
		for _, e := range earlier {
			w.add(e)
		}
		for _, e := range earlier {
			prog.submitted.Add(int64(e.Rows))
			prog.bulks.Add(1)
		}
	}
	var waitErr error
	var waited sync.WaitGroup
	if w != nil {
		waited.Go(func() {
			if waitErr = w.run(ctx); waitErr != nil {
				cancel()
			}
		})
	}
	sendErr := c.send(ctx, cl, path, format, o, st, func(e bulkEntry) {
		if w != nil {
			w.add(e)
		}
	}, prog)
	if sendErr != nil {
		cancel()
	}
	if w != nil {
		w.close()
	}
	waited.Wait()
	prog.stop()
	sum.accepted = len(st.entries())
	if sendErr != nil {
		return sum, sendErr
	}
	if err := parent.Err(); err != nil {
		return sum, err
	}
	if waitErr != nil {
		return sum, fmt.Errorf("every bulk was accepted, but waiting for them failed: %w (bulkctl list shows them)", waitErr)
	}
	if w != nil {
		for _, b := range w.finished {
			sum.statuses[b.Status]++
			sum.imported += b.RowsSucceeded
			sum.failed += b.RowsFailed
			sum.notTaken += b.Count - b.RowsSucceeded - b.RowsFailed
		}
	}
	return sum, nil
}

// plan is what the first pass found.
type plan struct {
	sha256 string
	rows   int
	bulks  int
	bad    []*lineError
}

// planInput reads the input whole once: its SHA-256, every row checked,
// the bulks counted; for a CSV, that each customer's lines are together.
// Nothing is held but a row at a time and, for a CSV, 8 bytes a customer.
func planInput(path, format string, o submitOptions) (*plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	in := io.TeeReader(f, h)
	rr, err := newRowReader(in, format)
	if err != nil {
		return nil, err
	}
	p := &plan{}
	split := splitter{maxRows: o.rows}
	var customers []uint64 // a hash of each CSV row's customer
	for {
		r, err := rr.Next()
		if err == io.EOF {
			break
		}
		var le *lineError
		if errors.As(err, &le) {
			if le.Fatal {
				return nil, fmt.Errorf("%s; nothing was sent", le)
			}
			p.bad = append(p.bad, le)
			continue
		}
		if err != nil {
			return nil, err
		}
		p.rows++
		if split.add(r) {
			p.bulks++
		}
		if r.Customer != nil {
			customers = append(customers, hash64(*r.Customer))
		}
	}
	if _, err := io.Copy(io.Discard, in); err != nil { // the hash covers the whole file
		return nil, err
	}
	p.sha256 = hex.EncodeToString(h.Sum(nil))
	if format == formatCSV {
		if err := customersTogether(path, customers); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// customersTogether checks that no customer's lines are in two places of
// a CSV input: a customer is one row, so its lines must follow each other.
// The hashes of the rows' customers tell whether any repeats; only then is
// the file read again to find which, exactly.
func customersTogether(path string, customers []uint64) error {
	slices.Sort(customers)
	var repeated map[uint64]bool
	for i := 1; i < len(customers); i++ {
		if customers[i] == customers[i-1] {
			if repeated == nil {
				repeated = map[uint64]bool{}
			}
			repeated[customers[i]] = true
		}
	}
	if repeated == nil {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rr, err := newCSVReader(f)
	if err != nil {
		return err
	}
	first := map[string]int{} // customer → the line of its first row
	var msgs []string
	for r, err := range goodRows(rr) {
		if err != nil {
			return err
		}
		if len(msgs) == 10 {
			break
		}
		id := *r.Customer
		if !repeated[hash64(id)] {
			continue
		}
		if line, ok := first[id]; ok {
			msgs = append(msgs, fmt.Sprintf("line %d: customer %q's lines are not together: they start at line %d, and again here", r.Line, id, line))
			continue
		}
		first[id] = r.Line
	}
	if len(msgs) == 0 {
		return nil // the hashes of two customers met
	}
	return fmt.Errorf("%s\nsort the file by customer.external_id (a customer's lines one after another); nothing was sent", strings.Join(msgs, "\n"))
}

// splitter decides where bulks begin: at most maxRows rows, maxBulkBytes
// of JSON and maxBulkAccounts debt accounts a bulk.
type splitter struct {
	maxRows               int
	rows, bytes, accounts int
}

// add counts r in and tells whether it begins a new bulk.
func (s *splitter) add(r row) bool {
	accounts := max(r.Accounts, 0)
	fresh := s.rows == 0 || s.rows >= s.maxRows || s.bytes+len(r.JSON)+1 > maxBulkBytes || s.accounts+accounts > maxBulkAccounts
	if fresh {
		s.rows, s.bytes, s.accounts = 0, 1, 0
	}
	s.rows++
	s.bytes += len(r.JSON) + 1
	s.accounts += accounts
	return fresh
}

// tellBadLines writes the bad lines of an input on stderr, the first 20.
func (c *cli) tellBadLines(path string, bad []*lineError, skipped bool) {
	verb := "malformed"
	if skipped {
		verb = "malformed, left out"
	}
	for i, e := range bad {
		if i == 20 {
			fmt.Fprintf(c.stderr, "bulkctl: %s: … and %d more %s lines\n", path, len(bad)-20, verb)
			break
		}
		fmt.Fprintf(c.stderr, "bulkctl: %s: %s (%s)\n", path, e, verb)
	}
}

// pending is one bulk to submit.
type pending struct {
	index, rows, firstLine int
	body                   []byte
}

// send is the second pass: it reads the input again, bulk by bulk, and
// submits those the state has not accepted, o.concurrency at once. Each
// accepted bulk is written to the state before accepted is told. The first
// error stops it: the bulks in flight finish, the rest is left for a run
// again.
func (c *cli) send(ctx context.Context, cl *client.Client, path, format string, o submitOptions, st *state,
	accepted func(bulkEntry), prog *progress) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rr, err := newRowReader(f, format)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan pending)
	var (
		mu       sync.Mutex
		firstErr error
		workers  sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	opts := o.client()
	for range o.concurrency {
		workers.Go(func() {
			for b := range queue {
				opts := opts
				opts.IdempotencyKey = st.idempotencyKey(b.index)
				sub, err := cl.SubmitJSON(ctx, b.body, opts)
				if err != nil {
					fail(fmt.Errorf("bulk %d (%d rows from line %d): %w", b.index+1, b.rows, b.firstLine, err))
					continue
				}
				if sub.Count != b.rows {
					fail(fmt.Errorf("bulk %d (from line %d): the server counted %d rows, %d were sent", b.index+1, b.firstLine, sub.Count, b.rows))
					continue
				}
				e := bulkEntry{Index: b.index, BulkID: sub.BulkID, Rows: b.rows, FirstLine: b.firstLine}
				if err := st.accept(e); err != nil {
					fail(err)
					continue
				}
				prog.submitted.Add(int64(b.rows))
				prog.bulks.Add(1)
				accepted(e)
			}
		})
	}

	split := splitter{maxRows: o.rows}
	var cur *pending
	index := -1
	flush := func() bool {
		if cur == nil {
			return true
		}
		b := *cur
		cur = nil
		if _, done := st.accepted(b.index); done {
			return true
		}
		b.body = append(b.body, ']')
		select {
		case queue <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	readErr := func() error {
		for r, err := range goodRows(rr) {
			if err != nil {
				return err
			}
			if split.add(r) {
				if !flush() {
					return nil
				}
				index++
				cur = &pending{index: index, firstLine: r.Line}
				if _, done := st.accepted(index); !done {
					cur.body = append(make([]byte, 0, 64<<10), '[')
				}
			}
			cur.rows++
			if cur.body != nil {
				if cur.rows > 1 {
					cur.body = append(cur.body, ',')
				}
				cur.body = append(cur.body, r.JSON...)
			}
		}
		return nil
	}()
	if readErr == nil {
		flush()
	}
	close(queue)
	workers.Wait()
	switch {
	case firstErr != nil:
		return firstErr
	case readErr != nil:
		return readErr
	}
	return ctx.Err()
}

// summarise writes the table of what was done and returns the exit status.
func (c *cli) summarise(sums []fileSummary, waited bool) int {
	tw := tabwriter.NewWriter(c.stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	code := exitOK
	if waited {
		fmt.Fprintln(tw, "file\tbulks\trows\timported\tfailed\tnot imported\tbulk statuses\t")
	} else {
		fmt.Fprintln(tw, "file\tbulks\trows\taccepted bulks\tof them earlier\t")
	}
	for _, s := range sums {
		if !waited {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", s.file, s.bulks, s.rows, s.accepted, s.acceptedEarlier)
			continue
		}
		var statuses []string
		for _, st := range []client.Status{client.StatusCompleted, client.StatusFailed, client.StatusCanceled} {
			if n := s.statuses[st]; n > 0 {
				statuses = append(statuses, fmt.Sprintf("%d %s", n, st))
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", s.file, s.bulks, s.rows, s.imported, s.failed, s.notTaken, strings.Join(statuses, ", "))
		if s.failed+s.notTaken > 0 || s.imported < s.rows {
			code = exitRowsFailed
		}
	}
	tw.Flush()
	if code == exitRowsFailed {
		for _, s := range sums {
			if s.failed+s.notTaken > 0 {
				fmt.Fprintf(c.stderr, "bulkctl: %s: %d rows failed; see them with: bulkctl errors --input %s  (--resubmit-file FILE writes them to fix and submit again, with --mode upsert)\n",
					s.file, s.failed+s.notTaken, s.file)
			}
		}
	}
	return code
}
