package bulksvc

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/store"
)

// Page sizes of List.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

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
	// Limit is the most bulks in the page: 0 is DefaultListLimit, and it is
	// at most MaxListLimit.
	Limit int
}

// BulkPage is one page of an organization's bulks, newest first.
type BulkPage struct {
	Bulks []models.Bulk
	// Next is the cursor of the next page, "" on the last one.
	Next string
}

// ErrInvalidCursor is returned by List for a cursor that List did not give
// to this organization: made up, damaged, or another organization's.
var ErrInvalidCursor = errors.New("bulksvc: the cursor is not one this organization was given")

// List returns a page of the organization's bulks, newest first. Paging
// with Next is stable while bulks are created: a page continues right below
// the last bulk of the page before, so new bulks (which sort first) never
// shift it, and no bulk that existed when the first page was read is
// skipped or repeated.
func (s *Service) List(ctx context.Context, orgID uuid.UUID, p ListParams) (BulkPage, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	q := store.ListBulksParams{Statuses: p.Statuses, CreatedAfter: p.CreatedAfter, CreatedBefore: p.CreatedBefore,
		Limit: limit + 1} // one more tells whether there is a next page
	if p.Cursor != "" {
		pos, err := decodeCursor(orgID, p.Cursor)
		if err != nil {
			return BulkPage{}, err
		}
		q.After = &pos
	}
	bulks, err := s.store.ListBulks(ctx, orgID, q)
	if err != nil {
		return BulkPage{}, fmt.Errorf("bulksvc: list: %w", err)
	}
	page := BulkPage{Bulks: bulks}
	if len(bulks) > limit {
		page.Bulks = bulks[:limit]
		last := page.Bulks[limit-1]
		page.Next = encodeCursor(orgID, store.BulkPosition{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return page, nil
}

// A cursor is base64url (unpadded) of a version byte, the position of the
// last bulk of a page (created_at in microseconds since 1970, Postgres'
// precision, and the bulk id) and the organization it was given to, so that
// one organization's cursor is refused to another. It is opaque to clients;
// the version lets its content change later.
const (
	cursorVersion = 1
	cursorLen     = 1 + 8 + 16 + 16
)

func encodeCursor(orgID uuid.UUID, pos store.BulkPosition) string {
	b := make([]byte, 0, cursorLen)
	b = append(b, cursorVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(pos.CreatedAt.UnixMicro()))
	b = append(b, pos.ID[:]...)
	b = append(b, orgID[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(orgID uuid.UUID, s string) (store.BulkPosition, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion || uuid.UUID(b[25:41]) != orgID {
		return store.BulkPosition{}, ErrInvalidCursor
	}
	at := time.UnixMicro(int64(binary.BigEndian.Uint64(b[1:9]))).UTC()
	if at.Before(cursorEarliest) || at.After(cursorLatest) {
		// Not a time a bulk was made: a hand-edited cursor, which Postgres
		// would not even take as a timestamp.
		return store.BulkPosition{}, ErrInvalidCursor
	}
	return store.BulkPosition{CreatedAt: at, ID: uuid.UUID(b[9:25])}, nil
}

// The times a cursor may name: bulkd made no bulk before 2000, nor will
// after 9999.
var (
	cursorEarliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	cursorLatest   = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)
