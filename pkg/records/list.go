package records

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/store"
)

// Page sizes of List.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// ErrInvalidCursor is a cursor List did not give to this organization for
// this resource.
var ErrInvalidCursor = errors.New("records: the cursor is not one this organization was given")

// ListParams selects a page of records, newest first.
type ListParams struct {
	Filter store.RecordFilter
	Cursor string // the Next of the page before; "" for the first
	Limit  int    // 0 is DefaultListLimit; at most MaxListLimit
}

// Page is one page of records and the cursor of the next ("" on the last).
type Page struct {
	Records []Record
	Next    string
}

// List returns a page of the organization's records of resource, newest
// first. Pages continue below the last record of the page before, so
// records added meanwhile never shift them: no record is skipped or
// repeated.
func (s *Service) List(ctx context.Context, orgID uuid.UUID, resource string, p ListParams) (Page, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	rp := store.RecordPage{Limit: limit + 1} // one more tells whether there is a next page
	if p.Cursor != "" {
		pos, err := decodeCursor(orgID, resource, p.Cursor)
		if err != nil {
			return Page{}, err
		}
		rp.After = &pos
	}
	var out []Record
	var positions []store.RecordPosition
	switch resource {
	case Locations:
		ls, err := s.store.ListLocations(ctx, orgID, p.Filter, rp)
		if err != nil {
			return Page{}, err
		}
		for _, l := range ls {
			out, positions = append(out, newLocation(l)), append(positions, store.RecordPosition{CreatedAt: l.CreatedAt, ID: l.ID})
		}
	case Customers:
		cs, err := s.store.ListCustomers(ctx, orgID, p.Filter, rp)
		if err != nil {
			return Page{}, err
		}
		for _, c := range cs {
			out, positions = append(out, newCustomer(c)), append(positions, store.RecordPosition{CreatedAt: c.CreatedAt, ID: c.ID})
		}
	case DebtAccounts:
		as, err := s.store.ListDebtAccounts(ctx, orgID, p.Filter, rp)
		if err != nil {
			return Page{}, err
		}
		for _, a := range as {
			out, positions = append(out, newDebtAccount(a)), append(positions, store.RecordPosition{CreatedAt: a.CreatedAt, ID: a.ID})
		}
	default:
		return Page{}, ErrUnknownResource
	}
	page := Page{Records: out}
	if len(out) > limit {
		page.Records = out[:limit]
		page.Next = encodeCursor(orgID, resource, positions[limit-1])
	}
	if page.Records == nil {
		page.Records = []Record{}
	}
	return page, nil
}

// A cursor is base64url of a version byte, the resource's first letter, the
// last record's created_at (microseconds) and id, and the organization, so
// that it is refused to another organization or resource.
const (
	cursorVersion = 1
	cursorLen     = 1 + 1 + 8 + 16 + 16
)

func encodeCursor(orgID uuid.UUID, resource string, pos store.RecordPosition) string {
	b := make([]byte, 0, cursorLen)
	b = append(b, cursorVersion, resource[0])
	b = binary.BigEndian.AppendUint64(b, uint64(pos.CreatedAt.UnixMicro()))
	b = append(b, pos.ID[:]...)
	b = append(b, orgID[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(orgID uuid.UUID, resource, s string) (store.RecordPosition, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion || b[1] != resource[0] || uuid.UUID(b[26:42]) != orgID {
		return store.RecordPosition{}, ErrInvalidCursor
	}
	return store.RecordPosition{
		CreatedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(b[2:10]))).UTC(),
		ID:        uuid.UUID(b[10:26]),
	}, nil
}
