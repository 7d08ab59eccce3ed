package records

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/store"
)

// byAPI is the provenance of a record the records API creates.
var byAPI = models.Provenance{Version: 1, LastChangedBy: models.ChangedByAPI}

// createFields are the members a created record's object may have: the
// import's section of a row, and what names the records it belongs to.
var createFields = map[string][]string{
	Locations: {"external_id", "name"},
	Customers: {"external_id", "name", "email", "phone", "date_of_birth", "ssn_last4", "address", "metadata",
		"location_id", "location_external_id"},
	DebtAccounts: {"external_id", "parent_external_id", "parent_id", "external_account_number", "balance",
		"current_balance", "billing_type", "metadata", "customer_id", "customer_external_id"},
}

// Create creates one record from an object shaped as an import row's
// section, validated by the import's rules. A customer names its location
// (location_id or location_external_id), a debt account its customer
// (customer_id or customer_external_id) and optionally its parent, a
// top-level account of the same customer (parent_id or
// parent_external_id). It runs under the organization's import lock, so a
// running import never meets an external id it did not plan for.
func (s *Service) Create(ctx context.Context, orgID uuid.UUID, resource string, object json.RawMessage) (Record, error) {
	allowed, ok := createFields[resource]
	if !ok {
		return nil, ErrUnknownResource
	}
	var f fields
	if err := json.Unmarshal(orNull(object), &f); err != nil || f == nil {
		return nil, invalid("object", "The object field must be a JSON object.")
	}
	for k := range f {
		if !slices.Contains(allowed, k) {
			return nil, unknownField(k, "object", "#/object")
		}
	}
	opts := bulk.Options{Mode: bulk.ModeCreate, Today: s.today()}
	var rec any
	var link func(tx *store.Store) error
	switch resource {
	case Locations:
		in := bulk.ParseLocation(f.pick("external_id", "name"), opts)
		if err := messagesError(in.Messages); err != nil {
			return nil, err
		}
		l := &models.Location{ID: uuid.Must(uuid.NewV7()), OrganizationID: orgID, ExternalID: in.Value.ExternalID,
			Name: optional(in.Value.Name), Provenance: byAPI}
		rec = l
	case Customers:
		in := bulk.ParseCustomer(f.pick("external_id", "name", "email", "phone", "date_of_birth", "ssn_last4", "address", "metadata"), opts)
		if err := messagesError(in.Messages); err != nil {
			return nil, err
		}
		v := in.Value
		c := &models.Customer{ID: uuid.Must(uuid.NewV7()), OrganizationID: orgID, ExternalID: v.ExternalID, Name: v.Name,
			Email: optional(v.Email), Phone: optional(v.Phone), SSNLast4: optional(v.SSNLast4),
			Address: v.Address, Metadata: v.Metadata, Provenance: byAPI}
		if !v.DateOfBirth.IsZero() {
			d := v.DateOfBirth
			c.DateOfBirth = &d
		}
		ref, err := reference(f, "location_id", "location_external_id")
		if err != nil {
			return nil, err
		}
		rec = c
		link = func(tx *store.Store) error {
			var l models.Location
			var err error
			if ref.id != nil {
				l, err = tx.Location(ctx, orgID, *ref.id)
			} else {
				l, err = tx.LocationByExternalID(ctx, orgID, ref.externalID)
			}
			if errors.Is(err, store.ErrNotFound) {
				return invalid(ref.field, "The selected "+bulk.Label(ref.field)+" is invalid.")
			}
			c.LocationID = l.ID
			return err
		}
	case DebtAccounts:
		in := bulk.ParseDebtAccount(f.pick("external_id", "parent_external_id", "external_account_number",
			"balance", "current_balance", "billing_type", "metadata"), opts, false)
		if err := messagesError(in.Messages); err != nil {
			return nil, err
		}
		v := in.Value
		a := &models.DebtAccount{ID: uuid.Must(uuid.NewV7()), OrganizationID: orgID, ExternalID: v.ExternalID,
			ExternalAccountNumber: optional(v.ExternalAccountNumber), Balance: v.Balance.String(),
			CurrentBalance: v.CurrentBalance.String(), BillingType: billingValue(v.BillingType), Metadata: v.Metadata,
			Provenance: byAPI}
		cref, err := reference(f, "customer_id", "customer_external_id")
		if err != nil {
			return nil, err
		}
		parent, field, err := newParent(f, v.ParentExternalID)
		if err != nil {
			return nil, err
		}
		rec = a
		link = func(tx *store.Store) error {
			var c models.Customer
			var err error
			if cref.id != nil {
				c, err = tx.Customer(ctx, orgID, *cref.id)
			} else {
				c, err = tx.CustomerByExternalID(ctx, orgID, cref.externalID)
			}
			if errors.Is(err, store.ErrNotFound) {
				return invalid(cref.field, "The selected "+bulk.Label(cref.field)+" is invalid.")
			} else if err != nil {
				return err
			}
			a.CustomerID = c.ID
			if field == "" {
				return nil
			}
			// The import's nesting rules, as a patch moving an account
			// checks them: a new account has no children of its own.
			a.ParentID, err = checkParent(ctx, tx, orgID, DebtAccount{ID: a.ID, CustomerID: c.ID}, parent, field)
			return err
		}
	}
	err := s.store.InTx(ctx, orgID, true, func(tx *store.Store) error {
		if link != nil {
			if err := link(tx); err != nil {
				return err
			}
		}
		if err := tx.CreateRecord(ctx, rec); errors.Is(err, store.ErrTaken) {
			return invalid("external_id", bulk.MsgTaken)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var id uuid.UUID
	switch r := rec.(type) {
	case *models.Location:
		id = r.ID
	case *models.Customer:
		id = r.ID
	case *models.DebtAccount:
		id = r.ID
	}
	return s.Get(ctx, orgID, resource, id)
}

// ref is a record an object names by id or by external id, and the field
// that named it.
type ref struct {
	id         *uuid.UUID
	externalID string
	field      string
}

// reference reads the record an object names by idField or externalField:
// exactly one of them, a UUID or a string.
func reference(f fields, idField, externalField string) (ref, error) {
	idRaw, hasID := f[idField]
	extRaw, hasExt := f[externalField]
	hasID = hasID && string(idRaw) != "null"
	hasExt = hasExt && string(extRaw) != "null"
	switch {
	case hasID && hasExt:
		return ref{}, invalid(idField, "The "+bulk.Label(idField)+" field is not allowed with "+bulk.Label(externalField)+"; name one of them.")
	case hasID:
		s, ok := stringOrNull(idRaw)
		id, err := uuid.Parse(s)
		if !ok || err != nil {
			return ref{}, invalid(idField, "The selected "+bulk.Label(idField)+" is invalid.")
		}
		return ref{id: &id, field: idField}, nil
	case hasExt:
		s, ok := stringOrNull(extRaw)
		if !ok || s == "" {
			return ref{}, invalid(externalField, "The "+bulk.Label(externalField)+" field must be a string.")
		}
		return ref{externalID: s, field: externalField}, nil
	}
	return ref{}, invalid(idField, "The "+bulk.Label(idField)+" field is required when "+bulk.Label(externalField)+" is not present.")
}

// newParent is the parent a created debt account names, if any, and the
// field that named it ("" for none).
func newParent(f fields, parentExternalID string) (parentRef, string, error) {
	s, ok := stringOrNull(f["parent_id"])
	switch {
	case !ok:
		return parentRef{}, "", invalid("parent_id", "The selected parent id is invalid.")
	case s != "" && parentExternalID != "":
		return parentRef{}, "", invalid("parent_id", "The parent id field is not allowed with parent external id; name one of them.")
	case parentExternalID != "":
		return parentRef{externalID: parentExternalID}, "parent_external_id", nil
	case s != "":
		id, err := uuid.Parse(s)
		if err != nil {
			return parentRef{}, "", invalid("parent_id", "The selected parent id is invalid.")
		}
		return parentRef{id: &id}, "parent_id", nil
	}
	return parentRef{}, "", nil
}

// optional is a nullable text column's value, to write or to show: "" is
// NULL.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
