package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkd/bulkd/pkg/client"
)

func (c *cli) status(ctx context.Context, args []string) (int, error) {
	fs, conn := c.flags("status")
	asJSON := fs.Bool("json", false, "the bulk as JSON")
	cl, id, err := c.oneBulk(fs, conn, args)
	if err != nil {
		return exitError, err
	}
	b, err := cl.GetBulk(ctx, id)
	if err != nil {
		return exitError, err
	}
	if *asJSON {
		return exitOK, writeJSON(c.stdout, b)
	}
	writeBulk(c.stdout, b)
	return exitOK, nil
}

// writeBulk writes a bulk as lines of name and value.
func writeBulk(w io.Writer, b *client.Bulk) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	opts := []string{"mode " + string(b.Mode)}
	for name, on := range map[string]bool{"atomic": b.Atomic, "validate-only": b.ValidateOnly, "strict": b.Strict} {
		if on {
			opts = append(opts, name)
		}
	}
	fmt.Fprintf(tw, "bulk\t%s\n", b.ID)
	fmt.Fprintf(tw, "status\t%s\n", b.Status)
	fmt.Fprintf(tw, "options\t%s\n", strings.Join(slices.Sorted(slices.Values(opts)), ", "))
	fmt.Fprintf(tw, "rows\t%d: %d imported, %d failed\n", b.Count, b.RowsSucceeded, b.RowsFailed)
	if b.RolledBack {
		fmt.Fprintf(tw, "rolled back\tyes: a row failed, so nothing was written\n")
	}
	fmt.Fprintf(tw, "written\t%d locations, %d customers, %d debt accounts\n",
		b.RecordsWritten.Locations, b.RecordsWritten.Customers, b.RecordsWritten.DebtAccounts)
	if b.FailureReason != "" {
		fmt.Fprintf(tw, "failure\t%s\n", b.FailureReason)
	}
	fmt.Fprintf(tw, "created\t%s\n", b.CreatedAt.Format(time.RFC3339))
	for _, t := range []struct {
		name string
		at   *time.Time
	}{{"started", b.StartedAt}, {"completed", b.CompletedAt}, {"canceled", b.CanceledAt}} {
		if t.at != nil {
			fmt.Fprintf(tw, "%s\t%s\n", t.name, t.at.Format(time.RFC3339))
		}
	}
	tw.Flush()
}

func (c *cli) list(ctx context.Context, args []string) (int, error) {
	fs, conn := c.flags("list")
	statuses := fs.String("status", "", "only bulks of these statuses, separated by commas (pending,processing,completed,failed,canceled)")
	limit := fs.Int("limit", 50, "at most this many bulks")
	asJSON := fs.Bool("json", false, "one JSON bulk a line")
	args, err := parse(fs, args)
	if err != nil {
		return exitError, err
	}
	if len(args) > 0 {
		return exitError, fmt.Errorf("list takes no arguments, only flags: %q", args)
	}
	cl, err := c.client(conn)
	if err != nil {
		return exitError, err
	}
	opts := client.ListBulksOptions{Limit: min(max(*limit, 1), 500)}
	if *statuses != "" {
		for s := range strings.SplitSeq(*statuses, ",") {
			opts.Statuses = append(opts.Statuses, client.Status(strings.TrimSpace(s)))
		}
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 8, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "BULK\tSTATUS\tROWS\tIMPORTED\tFAILED\tCREATED")
	}
	n := 0
	for b, err := range cl.AllBulks(ctx, opts) {
		if err != nil {
			tw.Flush()
			return exitError, err
		}
		if *asJSON {
			if err := writeJSON(c.stdout, b); err != nil {
				return exitError, err
			}
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", b.ID, b.Status, b.Count, b.RowsSucceeded, b.RowsFailed, b.CreatedAt.Format(time.RFC3339))
		}
		if n++; n == *limit {
			break
		}
	}
	return exitOK, tw.Flush()
}

func (c *cli) cancel(ctx context.Context, args []string) (int, error) {
	fs, conn := c.flags("cancel")
	cl, id, err := c.oneBulk(fs, conn, args)
	if err != nil {
		return exitError, err
	}
	b, err := cl.CancelBulk(ctx, id)
	if err != nil {
		return exitError, err
	}
	writeBulk(c.stdout, b)
	return exitOK, nil
}

func (c *cli) results(ctx context.Context, args []string) (int, error) {
	fs, conn := c.flags("results")
	format := fs.String("format", "table", "table, or json: one row's result a line")
	cl, id, err := c.oneBulk(fs, conn, args)
	if err != nil {
		return exitError, err
	}
	if *format != "table" && *format != "json" {
		return exitError, fmt.Errorf("--format %q: must be table or json", *format)
	}
	b, err := cl.GetBulk(ctx, id)
	if err != nil {
		return exitError, err
	}
	if b.Status != client.StatusCompleted {
		return exitError, fmt.Errorf("bulk %s is %s: results come once it is completed", id, b.Status)
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 8, 2, ' ', 0)
	if *format == "table" {
		fmt.Fprintln(tw, "ROW\tSTATUS\tCUSTOMER\tACTION\tLOCATION\tACTION\tDEBT ACCOUNTS")
	}
	for r, err := range cl.AllBulkResults(ctx, id, 1000) {
		if err != nil {
			tw.Flush()
			return exitError, err
		}
		if *format == "json" {
			if err := writeJSON(c.stdout, r); err != nil {
				return exitError, err
			}
			continue
		}
		var accounts []string
		for _, a := range append(append([]client.ResultObject(nil), r.ParentDebtAccounts...), r.DebtAccounts...) {
			accounts = append(accounts, deref(a.ExternalID)+" "+a.Action)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Row, r.Status, objectID(r.Customer), objectAction(r.Customer),
			objectID(r.Location), objectAction(r.Location), strings.Join(accounts, ", "))
	}
	return exitOK, tw.Flush()
}

func objectID(o *client.ResultObject) string {
	if o == nil {
		return "-"
	}
	return deref(o.ExternalID)
}

func objectAction(o *client.ResultObject) string {
	if o == nil {
		return "-"
	}
	return o.Action
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
