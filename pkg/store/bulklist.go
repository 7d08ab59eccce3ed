package store

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/page"
)

// ListBulksParams selects one page of an organization's bulks, newest first
// (by created_at, then id).
type ListBulksParams struct {
	// Statuses keeps the bulks in any of these statuses; empty keeps all.
	Statuses []string
	// CreatedAfter and CreatedBefore, when set, keep the bulks created
	// strictly after and strictly before these times.
	CreatedAfter  *time.Time
	CreatedBefore *time.Time
	// Page is where the page starts (below the last bulk of the page
	// before) and the most bulks it has; its Limit must be positive.
	Page page.Keyset
}

// ListBulks returns a page of the organization's bulks, newest first, in one
// keyset query: every page reads only its own bulks from an index, however
// many the organization has, and a page never moves because of bulks
// created after it was read (those sort before it).
func (s *Store) ListBulks(ctx context.Context, orgID uuid.UUID, p ListBulksParams) ([]models.Bulk, error) {
	// A status named twice would list its bulks twice.
	p.Statuses = slices.Compact(slices.Sorted(slices.Values(p.Statuses)))
	q, args := listBulksQuery(orgID, p)
	var out []models.Bulk
	if err := s.db.WithContext(ctx).Raw(q, args...).Scan(&out).Error; err != nil {
		return nil, errorf("store: list bulks: %w", err)
	}
	return out, nil
}

// listBulksQuery writes ListBulks' query. Without a status filter it is one
// range of bulks_organization_id_created_at_id_idx. With one, each status is
// its own range of bulks_organization_id_status_created_at_id_idx, already
// in order, and the ranges are merged (a Merge Append): a filter on
// `status = ANY(…)` would instead read the organization's bulks in order and
// drop those of other statuses, reading a million completed bulks to find a
// page of pending ones.
func listBulksQuery(orgID uuid.UUID, p ListBulksParams) (string, []any) {
	const order = ` ORDER BY created_at DESC, id DESC LIMIT ?`
	var (
		args []any
		b    strings.Builder
	)
	branch := func(status *string) {
		b.WriteString(`SELECT * FROM bulks WHERE organization_id = ?`)
		args = append(args, orgID)
		if status != nil {
			b.WriteString(` AND status = ?`)
			args = append(args, *status)
		}
		if p.CreatedAfter != nil {
			b.WriteString(` AND created_at > ?`)
			args = append(args, *p.CreatedAfter)
		}
		if p.CreatedBefore != nil {
			b.WriteString(` AND created_at < ?`)
			args = append(args, *p.CreatedBefore)
		}
		if after := p.Page.After; after != nil {
			// A row comparison, which the index reads as one range.
			b.WriteString(` AND (created_at, id) < (?, ?)`)
			args = append(args, after.CreatedAt, after.ID)
		}
		b.WriteString(order)
		args = append(args, p.Page.Limit)
	}
	switch len(p.Statuses) {
	case 0:
		branch(nil)
	case 1:
		branch(&p.Statuses[0])
	default:
		b.WriteString(`SELECT * FROM (`)
		for i := range p.Statuses {
			if i > 0 {
				b.WriteString(` UNION ALL `)
			}
			b.WriteString(`(`)
			branch(&p.Statuses[i])
			b.WriteString(`)`)
		}
		b.WriteString(`) b` + order)
		args = append(args, p.Page.Limit)
	}
	return b.String(), args
}
