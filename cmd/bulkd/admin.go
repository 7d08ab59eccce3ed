package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/configs"
	"github.com/bulkd/bulkd/pkg/store"
)

// The operator's commands that read and change organizations and keys. Each
// prints a table, or JSON with --json, for scripts.

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
