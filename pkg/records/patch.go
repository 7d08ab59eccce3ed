package records

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/jsonscan"
	"github.com/bulkd/bulkd/pkg/store"
)

// PatchKind is the format of a patch.
type PatchKind int

// Patch formats.
const (
	JSONPatch  PatchKind = iota // RFC 6902, application/json-patch+json
	MergePatch                  // RFC 7386, application/merge-patch+json
)

// MaxPatchCopyBytes bounds how much a JSON Patch's copy operations may add
// to the record: without a bound each copy of a member into itself doubles
// it, and a patch of a few kilobytes builds gigabytes.
const MaxPatchCopyBytes = 64 << 10

// readOnly are the members of each resource a patch may not change.
var readOnly = map[string][]string{
	Locations: {"id", "organization_id", "version", "created_at", "updated_at", "provenance"},
	Customers: {"id", "organization_id", "version", "created_at", "updated_at", "provenance", "location", "debt_accounts",
		"debt_accounts_truncated", "links"},
	DebtAccounts: {"id", "organization_id", "customer_id", "version", "created_at", "updated_at", "provenance"},
}

// Patch applies a patch to one record, as the record GET shows it, and
// writes the result if the import's rules accept it. changed is false when
// the patched record equals the stored one: nothing is written and the
// version stays. With If-Match the patch applies only to that version;
// without, to the current one: a record changed by another write between
// the read and the write is read and patched again, so no update is lost.
func (s *Service) Patch(ctx context.Context, orgID uuid.UUID, resource string, id uuid.UUID, ifMatch string, kind PatchKind, patch []byte) (rec Record, changed bool, err error) {
	if _, ok := readOnly[resource]; !ok {
		return nil, false, ErrUnknownResource
	}
	if err := checkPatch(kind, patch); err != nil {
		return nil, false, err
	}
	for {
		cur, err := s.Get(ctx, orgID, resource, id)
		if err != nil {
			return nil, false, err
		}
		if err := precondition(ifMatch, cur); err != nil {
			return nil, false, err
		}
		changed, err = s.patchOnce(ctx, orgID, resource, cur, kind, patch)
		var vm *store.VersionMismatchError
		if errors.As(err, &vm) {
			// Each such race is another write winning, so this loop ends;
			// the caller's deadline bounds it as it bounds any wait.
			if ifMatch == "" {
				if ctx.Err() != nil {
					return nil, false, ctx.Err()
				}
				continue
			}
			now, gerr := s.Get(ctx, orgID, resource, id)
			if gerr != nil {
				return nil, false, gerr
			}
			return nil, false, &PreconditionError{Version: versionOf(now), Current: now.ETag()}
		}
		if err != nil {
			return nil, false, err
		}
		if !changed {
			return cur, false, nil
		}
		rec, err = s.Get(ctx, orgID, resource, id)
		return rec, true, err
	}
}

// checkPatch refuses, before any is applied, a patch that is not one of
// kind or nests deeper than an imported row may: applying a merge patch
// costs time quadratic in its depth.
func checkPatch(kind PatchKind, patch []byte) error {
	if !json.Valid(patch) {
		return invalid("patch", "The patch must be JSON.")
	}
	if kind == JSONPatch && jsonscan.Kind(patch) != '[' {
		return invalid("patch", msgNotJSONPatch)
	}
	if jsonscan.Depth(patch) > bulk.MaxDepth {
		return invalid("patch", "The patch must not nest more than "+strconv.Itoa(bulk.MaxDepth)+" levels deep.")
	}
	return nil
}

const msgNotJSONPatch = "The patch must be a JSON Patch (RFC 6902): a list of operations with op and path."

// patchOnce patches cur and writes it conditioned on cur's version.
func (s *Service) patchOnce(ctx context.Context, orgID uuid.UUID, resource string, cur Record, kind PatchKind, patch []byte) (bool, error) {
	doc, err := json.Marshal(cur)
	if err != nil {
		return false, err
	}
	var out []byte
	switch kind {
	case JSONPatch:
		ops, derr := decodeJSONPatch(patch)
		if derr != nil {
			return false, derr
		}
		out, err = applyJSONPatch(doc, ops)
		if pe := (*patchError)(nil); err != nil && !errors.As(err, &pe) {
			return false, err // the record as shown is no JSON: not the client's doing
		}
	case MergePatch:
		out, err = jsonpatch.MergePatch(doc, patch)
	}
	if err != nil {
		return false, invalid("patch", "The patch cannot be applied to the "+singular[resource]+": "+err.Error()+".")
	}
	var before, after fields
	if err := json.Unmarshal(doc, &before); err != nil {
		return false, err
	}
	if err := json.Unmarshal(out, &after); err != nil || after == nil {
		return false, invalid("patch", "The patched "+singular[resource]+" must be an object.")
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			return false, unknownField(k, "patch", "#")
		}
	}
	for _, k := range readOnly[resource] {
		if !equalJSON(before[k], after[k]) {
			return false, invalid(k, "The "+bulk.Label(k)+" field is read-only.")
		}
	}
	opts := bulk.Options{Mode: bulk.ModeCreate, Today: s.today()}
	switch resource {
	case Locations:
		in := bulk.ParseLocation(after.pick("external_id", "name"), opts)
		if err := messagesError(in.Messages); err != nil {
			return false, err
		}
		l := cur.(Location)
		changes := []store.Change{chg("external_id", "text", in.Value.ExternalID), chg("name", "text", optional(in.Value.Name))}
		return s.write(ctx, orgID, resource, l.ID, l.Version, changes, in.Value.ExternalID != l.ExternalID, nil)
	case Customers:
		in := bulk.ParseCustomer(after.pick("external_id", "name", "email", "phone", "date_of_birth", "ssn_last4", "address", "metadata"), opts)
		if err := messagesError(in.Messages); err != nil {
			return false, err
		}
		c, v := cur.(Customer), in.Value
		loc, ok := stringOrNull(after["location_id"])
		locID, perr := uuid.Parse(loc)
		if !ok || perr != nil {
			return false, invalid("location_id", "The selected location id is invalid.")
		}
		changes := []store.Change{chg("external_id", "text", v.ExternalID), chg("name", "text", v.Name),
			chg("email", "text", optional(v.Email)), chg("phone", "text", optional(v.Phone)),
			chg("date_of_birth", "date", dateValue(v.DateOfBirth)), chg("ssn_last4", "text", optional(v.SSNLast4)),
			chg("address", "jsonb", jsonValue(v.Address)), chg("metadata", "jsonb", jsonValue(v.Metadata)),
			chg("location_id", "uuid", locID.String())}
		moved := locID != c.LocationID
		return s.write(ctx, orgID, resource, c.ID, c.Version, changes, moved || v.ExternalID != c.ExternalID, func(tx *store.Store) error {
			if !moved {
				return nil
			}
			if _, err := tx.Location(ctx, orgID, locID); errors.Is(err, store.ErrNotFound) {
				return invalid("location_id", "The selected location id is invalid.")
			} else if err != nil {
				return err
			}
			return nil
		})
	case DebtAccounts:
		// A current balance cannot be cleared: null, or the member
		// removed, keeps the stored one, as an upsert's null or absent
		// current_balance does. The import's default for it (the
		// balance) is a new account's.
		if cb, ok := after["current_balance"]; !ok || equalJSON(cb, json.RawMessage("null")) {
			after["current_balance"] = before["current_balance"]
		}
		in := bulk.ParseDebtAccount(after.pick("external_id", "parent_external_id", "external_account_number",
			"balance", "current_balance", "billing_type", "metadata"), opts, false)
		if err := messagesError(in.Messages); err != nil {
			return false, err
		}
		a, v := cur.(DebtAccount), in.Value
		parent, moved, field, err := parentChange(a, after, v.ParentExternalID)
		if err != nil {
			return false, err
		}
		changes := []store.Change{chg("external_id", "text", v.ExternalID),
			chg("external_account_number", "text", optional(v.ExternalAccountNumber)),
			chg("balance", "numeric", v.Balance.String()), chg("current_balance", "numeric", v.CurrentBalance.String()),
			chg("billing_type", "text[]", billingValue(v.BillingType)), chg("metadata", "jsonb", jsonValue(v.Metadata))}
		if !moved {
			return s.write(ctx, orgID, resource, a.ID, a.Version, changes, v.ExternalID != a.ExternalID, nil)
		}
		return s.write(ctx, orgID, resource, a.ID, a.Version, changes, true, func(tx *store.Store) error {
			id, err := checkParent(ctx, tx, orgID, a, parent, field)
			if err != nil {
				return err
			}
			changes = append(changes, store.Change{Column: "parent_id", Cast: "uuid", Value: uuidValue(id)})
			return nil
		}, &changes)
	}
	return false, ErrUnknownResource
}

// parentRef is the parent a patch names: by external id or by id, or none.
type parentRef struct {
	externalID string
	id         *uuid.UUID
	none       bool
}

// parentChange tells whether the patch moves the account to another parent
// (or to the top level), and which, and the field that named it.
func parentChange(a DebtAccount, after fields, parentExternalID string) (parentRef, bool, string, error) {
	before := ""
	if a.ParentExternalID != nil {
		before = *a.ParentExternalID
	}
	if parentExternalID != before {
		if parentExternalID == "" {
			return parentRef{none: true}, true, "parent_external_id", nil
		}
		return parentRef{externalID: parentExternalID}, true, "parent_external_id", nil
	}
	s, ok := stringOrNull(after["parent_id"])
	if !ok {
		return parentRef{}, false, "", invalid("parent_id", "The selected parent id is invalid.")
	}
	was := ""
	if a.ParentID != nil {
		was = a.ParentID.String()
	}
	if s == was {
		return parentRef{}, false, "", nil
	}
	if s == "" {
		return parentRef{none: true}, true, "parent_id", nil
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return parentRef{}, false, "", invalid("parent_id", "The selected parent id is invalid.")
	}
	return parentRef{id: &id}, true, "parent_id", nil
}

// checkParent finds the new parent of a and holds it to the import's
// nesting rules: a top-level account of the same customer, and a itself
// without children (one level only).
func checkParent(ctx context.Context, tx *store.Store, orgID uuid.UUID, a DebtAccount, ref parentRef, field string) (*uuid.UUID, error) {
	if ref.none {
		return nil, nil
	}
	// The import's messages, naming the field the client wrote.
	msgInvalid, msgNested := bulk.MsgInvalidParent, bulk.MsgParentNested
	if field == "parent_id" {
		msgInvalid = "The selected parent id is invalid."
		msgNested = strings.Replace(msgNested, "parent external id", "parent id", 1)
	}
	var p store.DebtAccountRecord
	var err error
	if ref.id != nil {
		p, err = tx.DebtAccount(ctx, orgID, *ref.id)
	} else {
		p, err = tx.DebtAccountByExternalID(ctx, orgID, ref.externalID)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, invalid(field, msgInvalid)
	case err != nil:
		return nil, err
	case p.ID == a.ID || p.CustomerID != a.CustomerID:
		return nil, invalid(field, msgInvalid)
	case p.ParentID != nil:
		return nil, invalid(field, msgNested)
	}
	n, err := tx.CountChildren(ctx, a.OrganizationID, a.ID)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, invalid(field, bulk.MsgHasChildren)
	}
	return &p.ID, nil
}

// write updates a record at version in one transaction; with lock, under
// the organization's import lock, since the change moves what an import
// finds the record by or links it to. check, when set, runs first in the
// transaction and may add to *more, the changes it decides.
func (s *Service) write(ctx context.Context, orgID uuid.UUID, resource string, id uuid.UUID, version int,
	changes []store.Change, lock bool, check func(tx *store.Store) error, more ...*[]store.Change) (bool, error) {
	var changed bool
	err := s.store.InTx(ctx, orgID, lock, func(tx *store.Store) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		if len(more) > 0 {
			changes = *more[0]
		}
		var err error
		changed, err = tx.UpdateRecord(ctx, resource, orgID, id, version, changes)
		if errors.Is(err, store.ErrTaken) {
			return invalid("external_id", bulk.MsgTaken)
		}
		return err
	})
	return changed, err
}

// unknownField refuses a member that is no field, keyed by the member and
// worded as a strict import words it, with pointer the JSON pointer of the
// object that holds it. One with an empty name is keyed by what holds it
// (whole), since an error keyed "" names nothing a client can show.
func unknownField(name, whole, pointer string) error {
	if name == "" {
		return invalid(whole, "The "+whole+" has a member with an empty name, which is no field.")
	}
	return invalid(name, bulk.MsgExtraneous(pointer, name))
}

func chg(column, cast string, v any) store.Change {
	return store.Change{Column: column, Cast: cast, Value: v}
}
