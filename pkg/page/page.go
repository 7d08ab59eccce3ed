// Package page is keyset pagination, the one kind every list of bulkd
// uses: the position of an item in a newest-first list, the cursor that
// carries the position of a page's last item to the client and back, the
// bounds of a page's size, and the links of a page as clients see them.
//
// A page continues right below the last item of the page before, so items
// added meanwhile (which sort first) never shift it, and no item that
// existed when the first page was read is skipped or repeated.
package page

import (
	"time"

	"github.com/google/uuid"
)

// Position is an item's place in a newest-first list: created_at, then id
// to tell apart items created in the same microsecond.
type Position struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// Keyset is what a store reads for one page: the items below After (all of
// them when it is nil), newest first, Limit at most.
type Keyset struct {
	After *Position
	Limit int
}

// Size bounds a list's pages: Default items when the client names no
// limit, Max at most.
type Size struct {
	Default, Max int
}

// Limit is the page size for a limit a client asked for: 0 (or less) is
// the default, and no more than Max.
func (s Size) Limit(n int) int {
	if n <= 0 {
		return s.Default
	}
	return min(n, s.Max)
}

// Query is one page of a list as a client asked for it (a cursor and a
// limit), read: Keyset is what to read from the store, and Cut makes the
// page and the next cursor of what was read.
type Query struct {
	Keyset   Keyset
	resource Resource
	org      uuid.UUID
	limit    int
}

// Query reads a client's cursor ("" for the first page) and limit for the
// list of resource of organization org. A cursor that Cut did not give to
// org for resource is ErrInvalidCursor.
func (s Size) Query(resource Resource, org uuid.UUID, cursor string, limit int) (Query, error) {
	q := Query{resource: resource, org: org, limit: s.Limit(limit)}
	// One more than the page tells whether there is a next page.
	q.Keyset.Limit = q.limit + 1
	if cursor != "" {
		pos, err := Decode(resource, org, cursor)
		if err != nil {
			return Query{}, err
		}
		q.Keyset.After = &pos
	}
	return q, nil
}

// Cut returns the page of items read with q.Keyset and the cursor of the
// next page, "" when this is the last one. pos is an item's position.
func Cut[T any](q Query, items []T, pos func(T) Position) (page []T, next string) {
	if len(items) <= q.limit {
		return items, ""
	}
	page = items[:q.limit]
	return page, Encode(q.resource, q.org, pos(page[q.limit-1]))
}

// Links point at the page after this one; Next is nil on the last. A link
// keeps the filters and the limit of the page it follows.
type Links struct {
	Next *string `json:"next"`
}

// List is a page of a list as the API answers it:
// {"data": [...], "links": {"next": ...}}.
type List[T any] struct {
	Data  []T   `json:"data"`
	Links Links `json:"links"`
}
