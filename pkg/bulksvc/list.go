package bulksvc

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/page"
	"github.com/bulkd/bulkd/pkg/store"
)

// ListSize bounds the pages of List.
var ListSize = page.Size{Default: 50, Max: 500}

// Statuses are the statuses a bulk can be in, the values List filters on.
var Statuses = []string{string(models.StatusPending), string(models.StatusProcessing), string(models.StatusCompleted),
	string(models.StatusFailed), string(models.StatusCanceled)}

// ListParams selects a page of an organization's bulks, newest first.
type ListParams struct {
	// Statuses keeps the bulks in any of these statuses; empty keeps all.
	Statuses []string
	// CreatedAfter and CreatedBefore, when set, keep the bulks created
	// strictly after and strictly before these times.
	CreatedAfter  *time.Time
	CreatedBefore *time.Time
	// Cursor is the Next of the page before; "" asks for the first page.
	Cursor string
	// Limit is the most bulks in the page, bounded by ListSize.
	Limit int
}

// BulkPage is one page of an organization's bulks, newest first.
type BulkPage struct {
	Bulks []models.Bulk
	// Next is the cursor of the next page, "" on the last one.
	Next string
}

// List returns a page of the organization's bulks, newest first, stable
// while bulks are created (see package page). A cursor that is not one List
// gave this organization is page.ErrInvalidCursor.
func (s *Service) List(ctx context.Context, orgID uuid.UUID, p ListParams) (BulkPage, error) {
	q, err := ListSize.Query(page.Bulks, orgID, p.Cursor, p.Limit)
	if err != nil {
		return BulkPage{}, err
	}
	bulks, err := s.store.ListBulks(ctx, orgID, store.ListBulksParams{Statuses: p.Statuses,
		CreatedAfter: p.CreatedAfter, CreatedBefore: p.CreatedBefore, Page: q.Keyset})
	if err != nil {
		return BulkPage{}, fmt.Errorf("bulksvc: list: %w", err)
	}
	var out BulkPage
	out.Bulks, out.Next = page.Cut(q, bulks, func(b models.Bulk) page.Position {
		return page.Position{CreatedAt: b.CreatedAt, ID: b.ID}
	})
	return out, nil
}
