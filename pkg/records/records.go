package records

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/store"
)

// Service reads and changes an organization's records.
type Service struct {
	store *store.Store
	now   func() time.Time
}

// New returns the records service over s.
func New(s *store.Store) *Service {
	return &Service{store: s, now: time.Now}
}

// Record is one record as the API shows it: a Location, Customer or
// DebtAccount.
type Record interface {
	ETag() string
}

// ErrNotFound is returned for a record that does not exist or belongs to
// another organization: the two cannot be told apart.
var ErrNotFound = store.ErrNotFound

// ErrUnknownResource is returned for a resource other than Locations,
// Customers and DebtAccounts.
var ErrUnknownResource = errors.New("records: unknown resource")

// ValidationError is a write the import's rules (or the records API's own,
// for read-only fields and links between records) refuse: messages by
// field, worded as an import's.
type ValidationError struct {
	Messages map[string][]string
}

func (e *ValidationError) Error() string {
	for _, f := range slices.Sorted(maps.Keys(e.Messages)) {
		return e.Messages[f][0]
	}
	return "The record is not valid."
}

func invalid(field, msg string) *ValidationError {
	return &ValidationError{Messages: map[string][]string{field: {msg}}}
}

// PreconditionError is a write whose If-Match no longer names the record:
// it changed since the client read it. Current is its ETag now.
type PreconditionError struct {
	Version int
	Current string
}

func (e *PreconditionError) Error() string {
	return fmt.Sprintf("The record has changed since it was read: its current version is %d (ETag %s).", e.Version, e.Current)
}

// InUseError is a delete refused because other records depend on the one
// to delete.
type InUseError = store.InUseError

// Get reads one record of the organization; a customer includes its
// location and debt accounts.
func (s *Service) Get(ctx context.Context, orgID uuid.UUID, resource string, id uuid.UUID) (Record, error) {
	switch resource {
	case Locations:
		l, err := s.store.Location(ctx, orgID, id)
		if err != nil {
			return nil, err
		}
		return newLocation(l), nil
	case Customers:
		return s.customer(ctx, s.store, orgID, id)
	case DebtAccounts:
		a, err := s.store.DebtAccount(ctx, orgID, id)
		if err != nil {
			return nil, err
		}
		return newDebtAccount(a), nil
	}
	return nil, ErrUnknownResource
}

func (s *Service) customer(ctx context.Context, st *store.Store, orgID, id uuid.UUID) (Customer, error) {
	c, err := st.Customer(ctx, orgID, id)
	if err != nil {
		return Customer{}, err
	}
	l, err := st.Location(ctx, orgID, c.LocationID)
	if err != nil {
		return Customer{}, fmt.Errorf("records: read location of customer %s: %w", id, err)
	}
	accounts, err := st.CustomerDebtAccounts(ctx, orgID, id)
	if err != nil {
		return Customer{}, err
	}
	return customerTree(c, l, accounts), nil
}

// listed tells whether a header's comma-separated list of entity tags
// names etag, or is "*". If-None-Match compares weakly (weak: a W/ tag
// names the record too, as RFC 9110 says); If-Match strongly, and takes a
// tag unquoted as well (a version as a list shows it).
func listed(header, etag string, weak bool) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == "*":
			return true
		case weak:
			t = strings.TrimPrefix(t, "W/")
		case !strings.HasPrefix(t, `"`):
			t = `"` + t + `"`
		}
		if t == etag {
			return true
		}
	}
	return false
}

// NotModified tells whether an If-None-Match header names the record as
// the client holds it already.
func NotModified(ifNoneMatch string, r Record) bool {
	return ifNoneMatch != "" && listed(ifNoneMatch, r.ETag(), true)
}

// IDOf is the id of a record.
func IDOf(r Record) uuid.UUID {
	switch v := r.(type) {
	case Location:
		return v.ID
	case Customer:
		return v.ID
	case DebtAccount:
		return v.ID
	}
	return uuid.Nil
}

func versionOf(r Record) int {
	switch v := r.(type) {
	case Location:
		return v.Version
	case Customer:
		return v.Version
	case DebtAccount:
		return v.Version
	}
	return 0
}

// precondition checks If-Match against the record's ETag or its version
// alone: a customer's ETag covers what it includes too, and its version is
// what a list shows and what a patch or delete of it changes.
func precondition(ifMatch string, r Record) error {
	if ifMatch != "" && !listed(ifMatch, r.ETag(), false) && !listed(ifMatch, versionTag(versionOf(r)), false) {
		return &PreconditionError{Version: versionOf(r), Current: r.ETag()}
	}
	return nil
}

// Delete deletes one record if If-Match (when given) still names it. A
// record others depend on is an *InUseError unless cascade deletes them
// too. It takes the organization's import lock: an import may be about to
// reuse the record.
func (s *Service) Delete(ctx context.Context, orgID uuid.UUID, resource string, id uuid.UUID, ifMatch string, cascade bool) error {
	if _, ok := singular[resource]; !ok {
		return ErrUnknownResource
	}
	return s.store.InTx(ctx, orgID, true, func(tx *store.Store) error {
		version := 0
		if ifMatch != "" {
			// Read under the lock, so that the version checked is the one
			// deleted (DeleteRecord checks it again on the locked row).
			cur, err := s.getIn(ctx, tx, orgID, resource, id)
			if err != nil {
				return err
			}
			if err := precondition(ifMatch, cur); err != nil {
				return err
			}
			version = versionOf(cur)
		}
		err := tx.DeleteRecord(ctx, resource, orgID, id, version, cascade)
		var vm *store.VersionMismatchError
		if errors.As(err, &vm) {
			cur, gerr := s.getIn(ctx, tx, orgID, resource, id)
			if gerr != nil {
				return gerr
			}
			return &PreconditionError{Version: vm.Current, Current: cur.ETag()}
		}
		return err
	})
}

// getIn is Get on the store of a transaction.
func (s *Service) getIn(ctx context.Context, st *store.Store, orgID uuid.UUID, resource string, id uuid.UUID) (Record, error) {
	return (&Service{store: st, now: s.now}).Get(ctx, orgID, resource, id)
}

// today is the day dates of birth must be before, as an import submitted
// now would have it.
func (s *Service) today() time.Time {
	y, m, d := s.now().UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// fields are the members of a record as a patch sees it.
type fields map[string]json.RawMessage

// pick writes the members names of f as one JSON object, the import's
// object for the parser to validate.
func (f fields) pick(names ...string) json.RawMessage {
	out := map[string]json.RawMessage{}
	for _, n := range names {
		if v, ok := f[n]; ok {
			out[n] = v
		}
	}
	b, _ := json.Marshal(out)
	return b
}

// equalJSON tells whether two JSON values are the same value.
func equalJSON(a, b json.RawMessage) bool {
	var x, y any
	if err := json.Unmarshal(orNull(a), &x); err != nil {
		return false
	}
	if err := json.Unmarshal(orNull(b), &y); err != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func orNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

// stringOrNull reads a JSON string or null.
func stringOrNull(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func messagesError(m bulk.Messages) *ValidationError {
	if len(m) == 0 {
		return nil
	}
	return &ValidationError{Messages: map[string][]string(m)}
}

func jsonValue(b json.RawMessage) any {
	if b == nil {
		return nil
	}
	return string(b)
}

func dateValue(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Format(time.DateOnly)
}

func uuidValue(id *uuid.UUID) any {
	if id == nil {
		return nil
	}
	return id.String()
}

func billingValue(b []string) models.StringArray { return models.StringArray(b) }
