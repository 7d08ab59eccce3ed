package records

import (
	"context"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/page"
	"github.com/bulkd/bulkd/pkg/store"
)

// ListSize bounds the pages of List.
var ListSize = page.Size{Default: 100, Max: 1000}

// lists are the cursors' names of each resource's list.
var lists = map[string]page.Resource{Locations: page.Locations, Customers: page.Customers, DebtAccounts: page.DebtAccounts}

// filters are what each resource's list filters on, in the order a next
// link writes them; ofCustomer those of a customer's debt accounts.
var (
	filters = map[string][]string{
		Locations:    {"external_id"},
		Customers:    {"external_id", "email", "location_id", "bulk_id"},
		DebtAccounts: {"customer_id", "external_id", "parent_id", "bulk_id"},
	}
	ofCustomer = []string{"external_id", "parent_id", "bulk_id"}
)

// Filters names the filters of resource's list, or with customer those of
// one customer's debt accounts (the customer is the filter), in the order a
// next link writes them.
func Filters(resource string, customer bool) []string {
	if customer {
		return ofCustomer
	}
	return filters[resource]
}

// FilterError is a list filter whose value cannot select anything: an id
// filter that is no UUID.
type FilterError struct {
	Param   string
	Message string
}

func (e *FilterError) Error() string { return e.Message }

// ListParams selects a page of records, newest first.
type ListParams struct {
	// Filters are the values of the filters Filters names, by name; each
	// given one must match.
	Filters map[string]string
	// Customer, when set, lists the debt accounts of this customer, which
	// must be the organization's.
	Customer *uuid.UUID
	Cursor   string // the Next of the page before; "" for the first
	Limit    int    // bounded by ListSize
}

// Page is one page of records and the cursor of the next ("" on the last).
type Page struct {
	Records []Record
	Next    string
}

// List returns a page of the organization's records of resource, newest
// first, stable while records are added (see package page). A cursor List
// did not give this organization for this list is page.ErrInvalidCursor;
// the customer of p.Customer not found, ErrNotFound.
func (s *Service) List(ctx context.Context, orgID uuid.UUID, resource string, p ListParams) (Page, error) {
	list, ok := lists[resource]
	if !ok || p.Customer != nil && resource != DebtAccounts {
		return Page{}, ErrUnknownResource
	}
	f, err := filter(p, Filters(resource, p.Customer != nil))
	if err != nil {
		return Page{}, err
	}
	if p.Customer != nil {
		if _, err := s.store.Customer(ctx, orgID, *p.Customer); err != nil {
			return Page{}, err
		}
	}
	q, err := ListSize.Query(list, orgID, p.Cursor, p.Limit)
	if err != nil {
		return Page{}, err
	}
	switch resource {
	case Locations:
		ls, err := s.store.ListLocations(ctx, orgID, f, q.Keyset)
		return pageOf(q, ls, err, func(l models.Location) (Record, page.Position) {
			return newLocation(l), page.Position{CreatedAt: l.CreatedAt, ID: l.ID}
		})
	case Customers:
		cs, err := s.store.ListCustomers(ctx, orgID, f, q.Keyset)
		return pageOf(q, cs, err, func(c models.Customer) (Record, page.Position) {
			return newCustomer(c), page.Position{CreatedAt: c.CreatedAt, ID: c.ID}
		})
	}
	as, err := s.store.ListDebtAccounts(ctx, orgID, f, q.Keyset)
	return pageOf(q, as, err, func(a store.DebtAccountRecord) (Record, page.Position) {
		return newDebtAccount(a), page.Position{CreatedAt: a.CreatedAt, ID: a.ID}
	})
}

// pageOf is the page of what a list query read.
func pageOf[T any](q page.Query, read []T, err error, view func(T) (Record, page.Position)) (Page, error) {
	if err != nil {
		return Page{}, err
	}
	items, next := page.Cut(q, read, func(v T) page.Position { _, pos := view(v); return pos })
	out := Page{Records: make([]Record, len(items)), Next: next}
	for i, v := range items {
		out.Records[i], _ = view(v)
	}
	return out, nil
}

// filter reads the filters of a list that it names: text as it is, ids as
// UUIDs.
func filter(p ListParams, names []string) (store.RecordFilter, error) {
	given := map[string]string{}
	for _, name := range names {
		if v, ok := p.Filters[name]; ok {
			given[name] = v
		}
	}
	f := store.RecordFilter{CustomerID: p.Customer, ExternalID: given["external_id"], Email: given["email"]}
	for _, id := range []struct {
		name string
		to   **uuid.UUID
	}{{"customer_id", &f.CustomerID}, {"location_id", &f.LocationID}, {"parent_id", &f.ParentID}, {"bulk_id", &f.BulkID}} {
		v, ok := given[id.name]
		if !ok {
			continue
		}
		parsed, err := uuid.Parse(v)
		if err != nil {
			return store.RecordFilter{}, &FilterError{Param: id.name, Message: "The " + id.name + " parameter must be an id (a UUID)."}
		}
		*id.to = &parsed
	}
	return f, nil
}
