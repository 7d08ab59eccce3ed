package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/configs"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/workers/tasks"
)

// The operator's commands that read and change organizations, keys and
// bulks. Each prints a table, or JSON with --json, for scripts.

func orgList(ctx context.Context, cfg configs.Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("org list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return withStore(ctx, cfg, func(s *store.Store) error {
		orgs, err := s.ListOrganizations(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			type org struct {
				ID          uuid.UUID  `json:"id"`
				Name        string     `json:"name"`
				NotifyEmail string     `json:"notify_email"`
				ActiveKeys  int        `json:"active_keys"`
				Bulks       int        `json:"bulks"`
				LastBulkAt  *time.Time `json:"last_bulk_at"`
				CreatedAt   time.Time  `json:"created_at"`
			}
			out := make([]org, len(orgs))
			for i, o := range orgs {
				out[i] = org{o.ID, o.Name, o.NotifyEmail, o.ActiveKeys, o.Bulks, o.LastBulkAt, o.CreatedAt}
			}
			return printJSON(stdout, out)
		}
		rows := [][]string{{"ID", "NAME", "NOTIFY EMAIL", "ACTIVE KEYS", "BULKS", "LAST BULK", "CREATED"}}
		for _, o := range orgs {
			rows = append(rows, []string{o.ID.String(), o.Name, o.NotifyEmail, fmt.Sprint(o.ActiveKeys), fmt.Sprint(o.Bulks),
				when(o.LastBulkAt), when(&o.CreatedAt)})
		}
		return printTable(stdout, rows)
	})
}

func orgUpdate(ctx context.Context, cfg configs.Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("org update", flag.ContinueOnError)
	orgID := fs.String("org", "", "organization id")
	name := fs.String("name", "", "new name")
	notify := fs.String("notify-email", "", "new address that bulk notifications go to")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	id, err := uuid.Parse(*orgID)
	if err != nil {
		return errors.New("org update: --org must be an organization id")
	}
	var u store.OrganizationUpdate
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "name":
			u.Name = name
		case "notify-email":
			u.NotifyEmail = notify
		}
	})
	if u.Name == nil && u.NotifyEmail == nil {
		return errors.New("org update: give --name, --notify-email or both")
	}
	if u.Name != nil && strings.TrimSpace(*u.Name) == "" {
		return errors.New("org update: --name must not be empty")
	}
	if u.NotifyEmail != nil {
		if addr, err := mail.ParseAddress(*u.NotifyEmail); err != nil || addr.Address != *u.NotifyEmail {
			return errors.New("org update: --notify-email must be a plain email address such as ops@example.com")
		}
	}
	return withStore(ctx, cfg, func(s *store.Store) error {
		org, err := s.UpdateOrganization(ctx, id, u)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("org update: no organization %s", id)
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, map[string]any{"id": org.ID, "name": org.Name, "notify_email": org.NotifyEmail})
		}
		return printTable(stdout, [][]string{{"ID", "NAME", "NOTIFY EMAIL"}, {org.ID.String(), org.Name, org.NotifyEmail}})
	})
}

func apikeyList(ctx context.Context, cfg configs.Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("apikey list", flag.ContinueOnError)
	orgID := fs.String("org", "", "organization id")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	id, err := uuid.Parse(*orgID)
	if err != nil {
		return errors.New("apikey list: --org must be an organization id")
	}
	return withStore(ctx, cfg, func(s *store.Store) error {
		keys, err := s.ListAPIKeys(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("apikey list: no organization %s", id)
		}
		if err != nil {
			return err
		}
		if *asJSON {
			type key struct {
				Prefix     string     `json:"prefix"`
				CreatedAt  time.Time  `json:"created_at"`
				LastUsedAt *time.Time `json:"last_used_at"`
				RevokedAt  *time.Time `json:"revoked_at"`
			}
			out := make([]key, len(keys))
			for i, k := range keys {
				out[i] = key{k.Prefix, k.CreatedAt, k.LastUsedAt, k.RevokedAt}
			}
			return printJSON(stdout, out)
		}
		rows := [][]string{{"PREFIX", "CREATED", "LAST USED", "REVOKED"}}
		for _, k := range keys {
			rows = append(rows, []string{k.Prefix, when(&k.CreatedAt), when(k.LastUsedAt), when(k.RevokedAt)})
		}
		return printTable(stdout, rows)
	})
}

// bulkRetry imports a failed bulk again (bulksvc.Retry): `bulkd bulk retry
// ID [--json]`, the flag before or after the id.
func bulkRetry(ctx context.Context, cfg configs.Config, log *slog.Logger, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bulk retry", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("bulk retry: give the bulk's id: bulkd bulk retry ID")
	}
	arg := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil { // the flags after the id
		return err
	}
	if fs.NArg() != 0 {
		return errors.New("bulk retry: give one bulk id: bulkd bulk retry ID")
	}
	id, err := uuid.Parse(arg)
	if err != nil {
		return fmt.Errorf("bulk retry: %q is not a bulk id", arg)
	}
	return withStore(ctx, cfg, func(s *store.Store) error {
		rdb := cfg.Redis.NewClient()
		defer rdb.Close()
		queue := tasks.NewQueue(asynq.NewClientFromRedisClient(rdb), asynq.NewInspectorFromRedisClient(rdb))
		b, err := bulksvc.New(s, queue, log, nil).Retry(ctx, id)
		var (
			notFailed bulksvc.ErrNotRetryable
			erased    bulksvc.ErrReportExpired
		)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("bulk retry: no bulk %s", id)
		case errors.As(err, &notFailed):
			return fmt.Errorf("bulk retry: bulk %s is %s; only a failed bulk can be retried", id, notFailed.Bulk.Status)
		case errors.As(err, &erased):
			return fmt.Errorf("bulk retry: bulk %s cannot be retried: its rows were erased on %s, RETENTION after it failed; its rows must be submitted again",
				id, when(erased.Bulk.ReportExpiredAt))
		case err != nil:
			return fmt.Errorf("bulk retry: %w", err)
		}
		if *asJSON {
			return printJSON(stdout, bulksvc.NewView(b))
		}
		return printTable(stdout, [][]string{{"BULK", "ORGANIZATION", "STATUS", "ROWS", "SUBMITTED"},
			{b.ID.String(), b.OrganizationID.String(), string(b.Status), fmt.Sprint(b.Count), when(&b.CreatedAt)}})
	})
}

// printTable writes rows as aligned columns, the first row the header.
func printTable(w io.Writer, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// when writes a time for a table, "-" for none.
func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
