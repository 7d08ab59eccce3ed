package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/bulkd/bulkd/pkg/client"
)

// errorsCmd writes the failed rows of bulks: those named, or with --input
// every bulk of a submitted file (its state file names them), as a report
// (a table, JSON or CSV) and, with --resubmit-file, as rows to fix and
// submit again: with --input, the input's own lines, exactly as they were.
func (c *cli) errorsCmd(ctx context.Context, args []string) (int, error) {
	fs, conn := c.flags("errors")
	format := fs.String("format", "table", "the report: table, json (one array of failed rows) or csv (one line a message)")
	out := fs.String("o", "", "write the report to this file (default: standard output)")
	input := fs.String("input", "", "the file submitted: report every one of its bulks, with the input's line numbers")
	statePathFlag := fs.String("state", "", "the input's state file, if submit was given one")
	resubmit := fs.String("resubmit-file", "", "write the failed rows here, in the input's format (without --input: by this file's extension), to fix and submit again")
	inFormat := fs.String("input-format", "", "the input's format, if submit was given --format")
	ids, err := parse(fs, args)
	if err != nil {
		return exitError, err
	}
	switch {
	case len(ids) == 0 && *input == "":
		return exitError, errors.New("errors takes bulk ids, or --input FILE for the bulks of a submitted file")
	case len(ids) > 0 && *input != "":
		return exitError, errors.New("errors takes bulk ids or --input FILE, not both")
	case *format != "table" && *format != "json" && *format != "csv":
		return exitError, fmt.Errorf("--format %q: must be table, json or csv", *format)
	}
	cl, err := c.client(conn)
	if err != nil {
		return exitError, err
	}
	w := c.stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return exitError, err
		}
		defer f.Close()
		w = f
	}
	rep := newReport(w, *format)
	var re *resubmitter
	if *resubmit != "" {
		if re, err = newResubmitter(*resubmit, *input, *inFormat); err != nil {
			return exitError, err
		}
	}
	if *input != "" {
		err = c.inputErrors(ctx, cl, *input, *inFormat, *statePathFlag, rep, re)
	} else {
		err = c.bulkErrors(ctx, cl, ids, rep, re)
	}
	if cerr := rep.close(); err == nil {
		err = cerr
	}
	if re != nil {
		if cerr := re.close(); err == nil {
			err = cerr
		}
		if err == nil {
			fmt.Fprintf(c.stderr, "bulkctl: wrote %d rows to %s; fix them and submit it with --mode upsert (the parts that did import are then matched, not taken)\n",
				re.rows, *resubmit)
		}
	}
	if err != nil {
		return exitError, err
	}
	return exitOK, nil
}

// failedBulk is one bulk's failures: its report, and whether every row of it
// went unimported (rolled back, failed or canceled).
type failedBulk struct {
	bulk   *client.Bulk
	report *client.ErrorsReport
	all    bool
}

func (c *cli) fetchFailures(ctx context.Context, cl *client.Client, id string) (*failedBulk, error) {
	b, err := cl.GetBulk(ctx, id)
	if err != nil {
		return nil, err
	}
	if !b.Status.Finished() {
		fmt.Fprintf(c.stderr, "bulkctl: bulk %s is %s; its errors are not known yet\n", id, b.Status)
		return &failedBulk{bulk: b, report: &client.ErrorsReport{Status: b.Status}}, nil
	}
	fb := &failedBulk{bulk: b, all: b.RolledBack || b.Status != client.StatusCompleted}
	if fb.report, err = cl.BulkErrors(ctx, id); err != nil {
		return nil, err
	}
	return fb, nil
}

// bulkErrors reports the bulks named by id; their failed rows are
// written back from the payloads the server kept.
func (c *cli) bulkErrors(ctx context.Context, cl *client.Client, ids []string, rep *report, re *resubmitter) error {
	for _, id := range ids {
		fb, err := c.fetchFailures(ctx, cl, id)
		if err != nil {
			return fmt.Errorf("bulk %s: %w", id, err)
		}
		if fb.all && len(fb.report.Data) < fb.bulk.Count && re != nil {
			fmt.Fprintf(c.stderr, "bulkctl: bulk %s imported none of its %d rows (%s); only its %d rows with errors can be written back without --input\n",
				id, fb.bulk.Count, whyNone(fb.bulk), len(fb.report.Data))
		}
		for _, r := range fb.report.Data {
			if err := rep.add(id, r, 0); err != nil {
				return err
			}
			if re != nil {
				if err := re.addPayload(r.Payload); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func whyNone(b *client.Bulk) string {
	if b.RolledBack {
		return "rolled back"
	}
	return string(b.Status)
}

// inputErrors reports every bulk of a submitted input, reading the input
// again alongside (in the order of its bulks, one bulk at a time) to name
// each failed row's line and write back its own bytes.
func (c *cli) inputErrors(ctx context.Context, cl *client.Client, path, format, stateFile string, rep *report, re *resubmitter) error {
	format, err := formatOf(path, format)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(statePath(path, stateFile))
	if err != nil {
		return fmt.Errorf("the state file of %s (written by submit): %w", path, err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("state file %s: %w", statePath(path, stateFile), err)
	}
	q, _ := parseRun(st.Run)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rr, err := newRowReader(f, format)
	if err != nil {
		return err
	}
	accepted := map[int]bulkEntry{}
	for _, e := range st.Entries {
		accepted[e.Index] = e
	}
	split := splitter{maxRows: q}
	index, rowInBulk := -1, 0
	var fb *failedBulk
	var failed map[int]client.RowError
	for r, err := range goodRows(rr) {
		if err != nil {
			return err
		}
		if split.add(r) {
			index, rowInBulk, fb = index+1, 0, nil
			e, ok := accepted[index]
			if !ok {
				fmt.Fprintf(c.stderr, "bulkctl: bulk %d of %s (from line %d) was not accepted yet; run submit again\n", index+1, path, r.Line)
				continue
			}
			if fb, err = c.fetchFailures(ctx, cl, e.BulkID); err != nil {
				return fmt.Errorf("bulk %s: %w", e.BulkID, err)
			}
			failed = map[int]client.RowError{}
			for _, re := range fb.report.Data {
				failed[re.Row] = re
			}
		}
		rowInBulk++
		if fb == nil {
			continue
		}
		rowErr, isFailed := failed[rowInBulk]
		if isFailed {
			if err := rep.add(fb.bulk.ID, rowErr, r.Line); err != nil {
				return err
			}
		}
		if re != nil && (isFailed || fb.all) {
			if err := re.addSpans(f, r.Spans); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseRun reads the rows a bulk of a run's state (its --rows).
func parseRun(run string) (int, error) {
	for part := range strings.SplitSeq(run, "&") {
		if v, ok := strings.CutPrefix(part, "rows="); ok {
			return strconv.Atoi(v)
		}
	}
	return 1000, nil
}

// report writes failed rows in one of the report formats.
type report struct {
	w      io.Writer
	format string
	tw     *tabwriter.Writer
	cw     *csv.Writer
	n      int
}

func newReport(w io.Writer, format string) *report {
	r := &report{w: w, format: format}
	switch format {
	case "table":
		r.tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(r.tw, "BULK\tROW\tLINE\tSECTION\tEXTERNAL ID\tFIELD\tMESSAGE")
	case "csv":
		r.cw = csv.NewWriter(w)
		_ = r.cw.Write([]string{"bulk_id", "row", "line", "section", "index", "external_id", "field", "message"})
	case "json":
		fmt.Fprint(w, "[")
	}
	return r
}

// message is one message of a failed row.
type message struct {
	section    string
	index      string // the object's position in its section as submitted, for accounts
	externalID string
	field, msg string
}

// messages lists a failed row's messages, section by section, fields in
// order.
func messages(r client.RowError) []message {
	var payload map[string]json.RawMessage
	_ = json.Unmarshal(r.Payload, &payload)
	var out []message
	sections := []struct {
		name string
		objs []client.ObjectError
	}{{"customer", r.Errors.Customer}, {"location", r.Errors.Location},
		{"parent_debt_accounts", r.Errors.ParentDebtAccounts}, {"debt_accounts", r.Errors.DebtAccounts}}
	for _, s := range sections {
		var submitted []json.RawMessage
		if s.name == "parent_debt_accounts" || s.name == "debt_accounts" {
			_ = json.Unmarshal(payload[s.name], &submitted)
		}
		for _, o := range s.objs {
			var obj struct {
				ExternalID any `json:"external_id"`
			}
			_ = json.Unmarshal(o.Data, &obj)
			m := message{section: s.name}
			if id, ok := obj.ExternalID.(string); ok {
				m.externalID = id
			}
			if submitted != nil {
				if i := slices.IndexFunc(submitted, func(raw json.RawMessage) bool { return jsonEqual(raw, o.Data) }); i >= 0 {
					m.index = strconv.Itoa(i)
				}
			}
			for _, field := range slices.Sorted(maps.Keys(o.Messages)) {
				for _, msg := range o.Messages[field] {
					m.field, m.msg = field, msg
					out = append(out, m)
				}
			}
		}
	}
	for _, msg := range r.Errors.Report {
		out = append(out, message{section: "report", msg: msg})
	}
	return out
}

func jsonEqual(a, b []byte) bool {
	var ca, cb bytes.Buffer
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}

// add writes one failed row; line is its input line, 0 when not known.
func (r *report) add(bulkID string, row client.RowError, line int) error {
	lineText := ""
	if line > 0 {
		lineText = strconv.Itoa(line)
	}
	switch r.format {
	case "json":
		v := struct {
			BulkID  string           `json:"bulk_id"`
			Row     int              `json:"row"`
			Line    int              `json:"line,omitempty"`
			Payload json.RawMessage  `json:"payload"`
			Errors  client.RowErrors `json:"errors"`
		}{bulkID, row.Row, line, row.Payload, row.Errors}
		if r.n > 0 {
			fmt.Fprint(r.w, ",")
		}
		fmt.Fprint(r.w, "\n")
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = r.w.Write(b)
		r.n++
		return err
	case "csv":
		for _, m := range messages(row) {
			if err := r.cw.Write([]string{bulkID, strconv.Itoa(row.Row), lineText, m.section, m.index, m.externalID, m.field, m.msg}); err != nil {
				return err
			}
		}
	default:
		for _, m := range messages(row) {
			fmt.Fprintf(r.tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", bulkID, row.Row, lineText, m.section, m.externalID, m.field, m.msg)
		}
	}
	r.n++
	return nil
}

func (r *report) close() error {
	switch r.format {
	case "json":
		_, err := fmt.Fprint(r.w, "\n]\n")
		return err
	case "csv":
		r.cw.Flush()
		return r.cw.Error()
	}
	return r.tw.Flush()
}

// resubmitter writes failed rows back in an input format.
type resubmitter struct {
	f      *os.File
	format string
	rows   int
	// With the input: its CSV header line, written first.
	header []byte
	// Without it, a CSV is made from the payloads, which are kept until
	// the end to know its columns.
	payloads [][]byte
}

func newResubmitter(path, input, inFormat string) (*resubmitter, error) {
	re := &resubmitter{}
	var err error
	if input != "" {
		if re.format, err = formatOf(input, inFormat); err != nil {
			return nil, err
		}
		if re.format == formatCSV {
			if re.header, err = csvHeaderLine(input); err != nil {
				return nil, err
			}
		}
	} else if re.format, err = formatOf(path, ""); err != nil {
		return nil, fmt.Errorf("--resubmit-file: %w", err)
	}
	if re.f, err = os.Create(path); err != nil {
		return nil, err
	}
	switch re.format {
	case formatCSV:
		_, err = re.f.Write(re.header)
	case formatJSON:
		_, err = re.f.WriteString("[")
	}
	return re, err
}

// csvHeaderLine is the header line of a CSV input, as it is in the file.
func csvHeaderLine(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	if _, err := r.Read(); err != nil {
		return nil, fmt.Errorf("%s: the header: %w", path, err)
	}
	b := make([]byte, r.InputOffset())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return withNewline(b), nil
}

func withNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	return b
}

// addSpans writes a row as the input had it.
func (re *resubmitter) addSpans(in io.ReaderAt, spans []span) error {
	var b []byte
	for _, s := range spans {
		chunk := make([]byte, s.End-s.Start)
		if _, err := in.ReadAt(chunk, s.Start); err != nil {
			return err
		}
		b = append(b, chunk...)
	}
	return re.write(b)
}

// addPayload writes a row as the server kept it.
func (re *resubmitter) addPayload(payload []byte) error {
	if re.format == formatCSV {
		re.payloads = append(re.payloads, payload)
		re.rows++
		return nil
	}
	return re.write(payload)
}

func (re *resubmitter) write(b []byte) error {
	var err error
	switch re.format {
	case formatCSV:
		_, err = re.f.Write(withNewline(b))
	case formatNDJSON:
		_, err = fmt.Fprintf(re.f, "%s\n", bytes.TrimSpace(b))
	case formatJSON:
		sep := ",\n"
		if re.rows == 0 {
			sep = "\n"
		}
		_, err = fmt.Fprintf(re.f, "%s%s", sep, bytes.TrimSpace(b))
	}
	re.rows++
	return err
}

func (re *resubmitter) close() error {
	var err error
	switch {
	case re.format == formatJSON:
		_, err = re.f.WriteString("\n]\n")
	case re.format == formatCSV && re.header == nil:
		err = writeCSVRows(re.f, re.payloads)
	}
	if cerr := re.f.Close(); err == nil {
		err = cerr
	}
	return err
}
