package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/page"
)

// The records API's reads and writes of locations, customers and debt
// accounts: plain CRUD through GORM. Writes that create or delete a record,
// or change what another record or an import finds it by (external id,
// location, parent), run under the organization's import lock (see InTx),
// so that an import's COPY never meets a record it did not plan for.

// ErrTaken is returned when a record would take an external id another
// record of the organization holds.
var ErrTaken = errors.New("store: the external id has already been taken")

// VersionMismatchError is returned by a write that was conditioned on a
// version the record no longer has.
type VersionMismatchError struct {
	Current int // the record's version now
}

func (e *VersionMismatchError) Error() string {
	return "store: the record is at version " + strconv.Itoa(e.Current)
}

// InUseError is returned when a record cannot be deleted because others
// depend on it: Count records of table What ("customers", "debt_accounts").
type InUseError struct {
	What  string
	Count int64
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("store: %d %s depend on the record", e.Count, e.What)
}

// InTx runs fn in one transaction on a Store bound to it; with lock, the
// transaction first takes the organization's import lock, waiting for a
// running import of the organization to commit. fn's store must not be used
// after fn returns.
func (s *Store) InTx(ctx context.Context, orgID uuid.UUID, lock bool, fn func(tx *Store) error) error {
	err := withTx(ctx, s.beginGORM, func(tx gormTx) error {
		if lock {
			if err := lockOrganization(ctx, tx, orgID); err != nil {
				return err
			}
		}
		return fn(&Store{pool: s.pool, db: tx.db})
	})
	if err != nil {
		return errorf("store: records transaction: %w", err)
	}
	return nil
}

// DebtAccountRecord is a debt account with the external id of its parent.
type DebtAccountRecord struct {
	models.DebtAccount
	ParentExternalID *string
}

const debtAccountSelect = `SELECT a.*, p.external_id AS parent_external_id FROM debt_accounts a
	LEFT JOIN debt_accounts p ON p.organization_id = a.organization_id AND p.id = a.parent_id`

// Location reads one location of the organization.
func (s *Store) Location(ctx context.Context, orgID, id uuid.UUID) (models.Location, error) {
	var l models.Location
	err := s.db.WithContext(ctx).Take(&l, "organization_id = ? AND id = ?", orgID, id).Error
	return l, readError("location", err)
}

// Customer reads one customer of the organization.
func (s *Store) Customer(ctx context.Context, orgID, id uuid.UUID) (models.Customer, error) {
	var c models.Customer
	err := s.db.WithContext(ctx).Take(&c, "organization_id = ? AND id = ?", orgID, id).Error
	return c, readError("customer", err)
}

// DebtAccount reads one debt account of the organization.
func (s *Store) DebtAccount(ctx context.Context, orgID, id uuid.UUID) (DebtAccountRecord, error) {
	return s.debtAccountWhere(ctx, "a.organization_id = ? AND a.id = ?", orgID, id)
}

// DebtAccountByExternalID reads the debt account of the organization that
// has this external id.
func (s *Store) DebtAccountByExternalID(ctx context.Context, orgID uuid.UUID, externalID string) (DebtAccountRecord, error) {
	return s.debtAccountWhere(ctx, "a.organization_id = ? AND a.external_id = ?", orgID, externalID)
}

func (s *Store) debtAccountWhere(ctx context.Context, where string, args ...any) (DebtAccountRecord, error) {
	var out []DebtAccountRecord
	if err := s.db.WithContext(ctx).Raw(debtAccountSelect+` WHERE `+where, args...).Scan(&out).Error; err != nil {
		return DebtAccountRecord{}, readError("debt account", err)
	}
	if len(out) == 0 {
		return DebtAccountRecord{}, ErrNotFound
	}
	return out[0], nil
}

// LocationByExternalID reads the location of the organization that has
// this external id.
func (s *Store) LocationByExternalID(ctx context.Context, orgID uuid.UUID, externalID string) (models.Location, error) {
	var l models.Location
	err := s.db.WithContext(ctx).Take(&l, "organization_id = ? AND external_id = ?", orgID, externalID).Error
	return l, readError("location", err)
}

// CustomerByExternalID reads the customer of the organization that has this
// external id.
func (s *Store) CustomerByExternalID(ctx context.Context, orgID uuid.UUID, externalID string) (models.Customer, error) {
	var c models.Customer
	err := s.db.WithContext(ctx).Take(&c, "organization_id = ? AND external_id = ?", orgID, externalID).Error
	return c, readError("customer", err)
}

// CustomerDebtAccounts reads the first limit debt accounts of a customer in
// the order of its tree: each top-level account, oldest first (by external
// id among those created together), followed by its children in the same
// order. Any prefix of that order is a tree (a child never comes before its
// parent), so a caller that asks for one more than it shows knows whether
// it left some out without reading them. Each part is read in index order
// (migration 0013): at most limit top-level accounts, and at most limit
// children of each, whatever the customer has.
func (s *Store) CustomerDebtAccounts(ctx context.Context, orgID, customerID uuid.UUID, limit int) ([]DebtAccountRecord, error) {
	var out []DebtAccountRecord
	err := s.db.WithContext(ctx).Raw(`WITH top AS (
			SELECT a.*, NULL::text AS parent_external_id, a.created_at AS tree_at, a.external_id AS tree_external_id, false AS is_child
			FROM debt_accounts a
			WHERE a.organization_id = @org AND a.customer_id = @customer AND a.parent_id IS NULL
			ORDER BY a.created_at, a.external_id LIMIT @limit)
		SELECT * FROM (
			SELECT * FROM top
			UNION ALL
			SELECT k.*, t.external_id, t.created_at, t.external_id, true FROM top t CROSS JOIN LATERAL (
				SELECT c.* FROM debt_accounts c WHERE c.parent_id = t.id AND c.organization_id = @org
				ORDER BY c.created_at, c.external_id LIMIT @limit) k
		) tree
		ORDER BY tree_at, tree_external_id, is_child, created_at, external_id
		LIMIT @limit`, sql.Named("org", orgID), sql.Named("customer", customerID), sql.Named("limit", limit)).Scan(&out).Error
	if err != nil {
		return nil, errorf("store: read debt accounts of customer %s: %w", customerID, err)
	}
	return out, nil
}

// CountChildren counts the debt accounts of the organization nested under
// one.
func (s *Store) CountChildren(ctx context.Context, orgID, id uuid.UUID) (int64, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&models.DebtAccount{}).Where("organization_id = ? AND parent_id = ?", orgID, id).Count(&n).Error; err != nil {
		return 0, errorf("store: count children of %s: %w", id, err)
	}
	return n, nil
}

func readError(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return ErrNotFound
	}
	return errorf("store: read %s: %w", what, err)
}

// RecordFilter selects the records of a list: each set field must match
// (Email whatever its case). Columns not in the table are refused by the
// list functions.
type RecordFilter struct {
	ExternalID string
	Email      string
	LocationID *uuid.UUID
	CustomerID *uuid.UUID
	ParentID   *uuid.UUID
	BulkID     *uuid.UUID
}

// ListLocations lists the organization's locations, newest first.
func (s *Store) ListLocations(ctx context.Context, orgID uuid.UUID, f RecordFilter, p page.Keyset) ([]models.Location, error) {
	var out []models.Location
	q, args := listQuery("SELECT t.* FROM locations t", orgID, f, p)
	if err := s.db.WithContext(ctx).Raw(q, args...).Scan(&out).Error; err != nil {
		return nil, errorf("store: list locations: %w", err)
	}
	return out, nil
}

// ListCustomers lists the organization's customers, newest first.
func (s *Store) ListCustomers(ctx context.Context, orgID uuid.UUID, f RecordFilter, p page.Keyset) ([]models.Customer, error) {
	var out []models.Customer
	q, args := listQuery("SELECT t.* FROM customers t", orgID, f, p)
	if err := s.db.WithContext(ctx).Raw(q, args...).Scan(&out).Error; err != nil {
		return nil, errorf("store: list customers: %w", err)
	}
	return out, nil
}

// ListDebtAccounts lists the organization's debt accounts, newest first.
func (s *Store) ListDebtAccounts(ctx context.Context, orgID uuid.UUID, f RecordFilter, p page.Keyset) ([]DebtAccountRecord, error) {
	var out []DebtAccountRecord
	q, args := listQuery(`SELECT t.*, p.external_id AS parent_external_id FROM debt_accounts t
		LEFT JOIN debt_accounts p ON p.organization_id = t.organization_id AND p.id = t.parent_id`, orgID, f, p)
	if err := s.db.WithContext(ctx).Raw(q, args...).Scan(&out).Error; err != nil {
		return nil, errorf("store: list debt accounts: %w", err)
	}
	return out, nil
}

// listQuery writes a keyset page query: each page continues below the
// (created_at, id) of the last record of the page before, so records added
// meanwhile (newer) never shift it.
func listQuery(sel string, orgID uuid.UUID, f RecordFilter, p page.Keyset) (string, []any) {
	where := []string{"t.organization_id = ?"}
	args := []any{orgID}
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if f.ExternalID != "" {
		add("t.external_id = ?", f.ExternalID)
	}
	if f.Email != "" {
		// Any case, in the form the index on lower(email) serves.
		add("t.email IS NOT NULL AND lower(t.email) = lower(?)", f.Email)
	}
	if f.LocationID != nil {
		add("t.location_id = ?", *f.LocationID)
	}
	if f.CustomerID != nil {
		add("t.customer_id = ?", *f.CustomerID)
	}
	if f.ParentID != nil {
		add("t.parent_id = ?", *f.ParentID)
	}
	if f.BulkID != nil {
		add("t.bulk_id = ?", *f.BulkID)
	}
	if p.After != nil {
		where = append(where, "(t.created_at, t.id) < (?, ?)")
		args = append(args, p.After.CreatedAt, p.After.ID)
	}
	args = append(args, p.Limit)
	return sel + " WHERE " + strings.Join(where, " AND ") + " ORDER BY t.created_at DESC, t.id DESC LIMIT ?", args
}

// Change is one column a record update sets: Cast is the Postgres type the
// value is read as ("text", "jsonb", "numeric", "text[]", "date", "uuid"),
// which also makes the comparison with the stored value semantic (two
// spellings of one jsonb are equal).
type Change struct {
	Column string
	Cast   string
	Value  any
}

// recordTables are the tables UpdateRecord and DeleteRecord may name.
var recordTables = map[string]bool{"locations": true, "customers": true, "debt_accounts": true}

// UpdateRecord sets the changes on one record of table if it is still at
// version, and counts a new version, unless every change equals what is
// stored: then it writes nothing and changed is false. A record at another
// version is a *VersionMismatchError; an external id another record holds
// is ErrTaken.
func (s *Store) UpdateRecord(ctx context.Context, table string, orgID, id uuid.UUID, version int, changes []Change) (changed bool, err error) {
	if !recordTables[table] {
		return false, fmt.Errorf("store: update %s: not a record table", table)
	}
	var set, differ []string
	var setArgs, differArgs []any
	for _, c := range changes {
		set = append(set, c.Column+" = ?::"+c.Cast)
		setArgs = append(setArgs, c.Value)
		differ = append(differ, c.Column+" IS DISTINCT FROM ?::"+c.Cast)
		differArgs = append(differArgs, c.Value)
	}
	if len(changes) > 0 {
		set = append(set, "version = version + 1", "updated_at = clock_timestamp()", "last_changed_by = 'api'")
		q := `UPDATE ` + table + ` SET ` + strings.Join(set, ", ") +
			` WHERE organization_id = ? AND id = ? AND version = ? AND (` + strings.Join(differ, " OR ") + `)`
		args := append(append(setArgs, orgID, id, version), differArgs...)
		res := s.db.WithContext(ctx).Exec(q, args...)
		if errors.Is(res.Error, gorm.ErrDuplicatedKey) {
			return false, ErrTaken
		}
		if res.Error != nil {
			return false, errorf("store: update %s %s: %w", table, id, res.Error)
		}
		if res.RowsAffected == 1 {
			return true, nil
		}
	}
	// Nothing updated: the record is gone, at another version, or equal.
	var current []int
	if err := s.db.WithContext(ctx).Raw(`SELECT version FROM `+table+` WHERE organization_id = ? AND id = ?`, orgID, id).
		Scan(&current).Error; err != nil {
		return false, errorf("store: update %s %s: %w", table, id, err)
	}
	switch {
	case len(current) == 0:
		return false, ErrNotFound
	case current[0] != version:
		return false, &VersionMismatchError{Current: current[0]}
	}
	return false, nil
}

// DeleteRecord deletes one record of table at version (0: any version).
// Its dependents (a location's customers and their debt accounts, a
// customer's debt accounts, an account's children) make it an *InUseError,
// unless cascade deletes them too. Call it in InTx with the lock: an import
// may be about to reuse the record.
func (s *Store) DeleteRecord(ctx context.Context, table string, orgID, id uuid.UUID, version int, cascade bool) error {
	if !recordTables[table] {
		return fmt.Errorf("store: delete %s: not a record table", table)
	}
	db := s.db.WithContext(ctx)
	var current []int
	if err := db.Raw(`SELECT version FROM `+table+` WHERE organization_id = ? AND id = ? FOR UPDATE`, orgID, id).
		Scan(&current).Error; err != nil {
		return errorf("store: delete %s %s: %w", table, id, err)
	}
	switch {
	case len(current) == 0:
		return ErrNotFound
	case version != 0 && current[0] != version:
		return &VersionMismatchError{Current: current[0]}
	}
	// The dependents, most dependent first: children, then accounts, then
	// customers.
	var steps []struct{ what, count, del string }
	switch table {
	case "locations":
		steps = []struct{ what, count, del string }{
			{"customers", `SELECT count(*) FROM customers WHERE organization_id = @org AND location_id = @id`, ""},
			{"", "", `DELETE FROM debt_accounts WHERE organization_id = @org AND parent_id IS NOT NULL
				AND customer_id IN (SELECT id FROM customers WHERE organization_id = @org AND location_id = @id)`},
			{"", "", `DELETE FROM debt_accounts WHERE organization_id = @org
				AND customer_id IN (SELECT id FROM customers WHERE organization_id = @org AND location_id = @id)`},
			{"", "", `DELETE FROM customers WHERE organization_id = @org AND location_id = @id`},
		}
	case "customers":
		steps = []struct{ what, count, del string }{
			{"debt_accounts", `SELECT count(*) FROM debt_accounts WHERE organization_id = @org AND customer_id = @id`, ""},
			{"", "", `DELETE FROM debt_accounts WHERE organization_id = @org AND customer_id = @id AND parent_id IS NOT NULL`},
			{"", "", `DELETE FROM debt_accounts WHERE organization_id = @org AND customer_id = @id`},
		}
	case "debt_accounts":
		steps = []struct{ what, count, del string }{
			{"debt_accounts", `SELECT count(*) FROM debt_accounts WHERE organization_id = @org AND parent_id = @id`, ""},
			{"", "", `DELETE FROM debt_accounts WHERE organization_id = @org AND parent_id = @id`},
		}
	}
	named := []any{sql.Named("org", orgID), sql.Named("id", id)}
	for _, st := range steps {
		if st.count != "" {
			var n int64
			if err := db.Raw(st.count, named...).Scan(&n).Error; err != nil {
				return errorf("store: delete %s %s: count %s: %w", table, id, st.what, err)
			}
			if n == 0 {
				break // no dependents: nothing to cascade
			}
			if !cascade {
				return &InUseError{What: st.what, Count: n}
			}
			continue
		}
		if err := db.Exec(st.del, named...).Error; err != nil {
			return errorf("store: delete %s %s: dependents: %w", table, id, err)
		}
	}
	if err := db.Exec(`DELETE FROM `+table+` WHERE organization_id = ? AND id = ?`, orgID, id).Error; err != nil {
		return errorf("store: delete %s %s: %w", table, id, err)
	}
	return nil
}

// CreateRecord inserts a new location, customer or debt account (a
// *models.Location, *models.Customer or *models.DebtAccount). Call it in
// InTx with the lock. An external id taken is ErrTaken.
func (s *Store) CreateRecord(ctx context.Context, rec any) error {
	err := s.db.WithContext(ctx).Create(rec).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return ErrTaken
	}
	if err != nil {
		return errorf("store: create record: %w", err)
	}
	return nil
}
