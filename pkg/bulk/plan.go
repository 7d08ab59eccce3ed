package bulk

import (
	"encoding/json"

	"github.com/google/uuid"
)

// Action is what an import did with one submitted object.
type Action string

// Actions an import takes on an object.
const (
	ActionCreated Action = "created" // written by this bulk
	ActionFound   Action = "found"   // an existing customer or location, reused
	ActionFailed  Action = "failed"  // not written; its messages say why
)

// Existing is what the organization's data already holds under the external
// ids that a bulk names, as read by the store before planning.
type Existing struct {
	Locations    map[string]Record
	Customers    map[string]Record
	DebtAccounts map[string]Record
}

// Record identifies a stored record and the bulk row that wrote it.
type Record struct {
	ID      uuid.UUID
	BulkID  uuid.UUID
	BulkRow int
}

// writtenBy tells whether this record was written by the given bulk row: a
// retried import then treats it as its own work rather than as "taken".
func (r Record) writtenBy(bulkID uuid.UUID, row int) bool {
	return r.BulkID == bulkID && r.BulkRow == row
}

// Outcome is the result for one object: the action taken and the id of the
// record it was written as or matched to.
type Outcome struct {
	Action Action
	ID     uuid.UUID
}

// NewLocation is a location to insert.
type NewLocation struct {
	ID  uuid.UUID
	Row int
	Location
}

// NewCustomer is a customer to insert.
type NewCustomer struct {
	ID         uuid.UUID
	Row        int
	LocationID uuid.UUID
	Customer
}

// NewDebtAccount is a debt account to insert. ParentID is uuid.Nil for a
// top-level account.
type NewDebtAccount struct {
	ID         uuid.UUID
	Row        int
	CustomerID uuid.UUID
	ParentID   uuid.UUID
	DebtAccount
}

// Plan is what an import writes: new records in dependency order (parents
// before children) and the outcome of every submitted object in its row.
type Plan struct {
	BulkID       uuid.UUID
	Rows         []*Row
	Locations    []NewLocation
	Customers    []NewCustomer
	DebtAccounts []NewDebtAccount
}

// ExternalIDs lists the distinct external ids the valid objects of rows name,
// for the store to look up before planning.
func ExternalIDs(rows []*Row) (locations, customers, debtAccounts []string) {
	seen := [3]map[string]bool{{}, {}, {}}
	add := func(i int, list *[]string, id string) {
		if id != "" && !seen[i][id] {
			seen[i][id] = true
			*list = append(*list, id)
		}
	}
	for _, r := range rows {
		if r.Location != nil && !r.Location.Failed() {
			add(0, &locations, r.Location.Value.ExternalID)
		}
		if !r.Customer.Failed() {
			add(1, &customers, r.Customer.Value.ExternalID)
		}
		for _, list := range [][]*Input[DebtAccount]{r.ParentDebtAccounts, r.DebtAccounts} {
			for _, a := range list {
				if !a.Failed() {
					add(2, &debtAccounts, a.Value.ExternalID)
				}
			}
		}
	}
	return locations, customers, debtAccounts
}

// NewPlan decides, for every object of the parsed rows, whether it is written,
// reused or fails, given what already exists. Rows are taken in order, so the
// first occurrence of an external id in a bulk wins and later ones are
// "taken". Records this bulk wrote in an earlier attempt count as created by
// it, which makes a retried import report exactly what the first one would.
func NewPlan(bulkID uuid.UUID, rows []*Row, existing Existing) *Plan {
	p := &Plan{BulkID: bulkID, Rows: rows}
	locations := map[string]uuid.UUID{}
	customers := map[string]uuid.UUID{}
	accounts := map[string]bool{}
	for _, r := range rows {
		p.planLocation(r, existing.Locations, locations)
		p.planCustomer(r, existing.Customers, customers)
		p.planDebtAccounts(r, existing.DebtAccounts, accounts)
	}
	return p
}

// foundOrCreated settles a customer or location: reused when the bulk or the
// database already has it, otherwise created with a new id.
func (p *Plan) foundOrCreated(row int, extID string, existing map[string]Record, inBulk map[string]uuid.UUID) (Outcome, bool) {
	if id, ok := inBulk[extID]; ok {
		return Outcome{Action: ActionFound, ID: id}, false
	}
	if rec, ok := existing[extID]; ok {
		inBulk[extID] = rec.ID
		if rec.writtenBy(p.BulkID, row) {
			return Outcome{Action: ActionCreated, ID: rec.ID}, false
		}
		return Outcome{Action: ActionFound, ID: rec.ID}, false
	}
	id := uuid.New()
	inBulk[extID] = id
	return Outcome{Action: ActionCreated, ID: id}, true
}

func (p *Plan) planLocation(r *Row, existing map[string]Record, inBulk map[string]uuid.UUID) {
	loc := r.Location
	if loc == nil || loc.Failed() {
		return
	}
	out, isNew := p.foundOrCreated(r.Number, loc.Value.ExternalID, existing, inBulk)
	loc.Outcome = out
	if isNew {
		p.Locations = append(p.Locations, NewLocation{ID: out.ID, Row: r.Number, Location: loc.Value})
	}
}

func (p *Plan) planCustomer(r *Row, existing map[string]Record, inBulk map[string]uuid.UUID) {
	c := r.Customer
	if c.Failed() {
		return
	}
	if r.Location == nil || r.Location.Failed() {
		// A customer belongs to a location: writing it without one would leave
		// a record that a corrected resubmission could never attach.
		c.Messages.add("location", MsgLocationFailed)
		return
	}
	out, isNew := p.foundOrCreated(r.Number, c.Value.ExternalID, existing, inBulk)
	c.Outcome = out
	if isNew {
		p.Customers = append(p.Customers, NewCustomer{ID: out.ID, Row: r.Number, LocationID: r.Location.Outcome.ID, Customer: c.Value})
	}
}

func (p *Plan) planDebtAccounts(r *Row, existing map[string]Record, inBulk map[string]bool) {
	// Parents first: explicit ones, then top-level debt accounts, then children.
	ordered := make([]*Input[DebtAccount], 0, len(r.ParentDebtAccounts)+len(r.DebtAccounts))
	ordered = append(ordered, r.ParentDebtAccounts...)
	for _, a := range r.DebtAccounts {
		if a.Value.ParentExternalID == "" {
			ordered = append(ordered, a)
		}
	}
	for _, a := range r.DebtAccounts {
		if a.Value.ParentExternalID != "" {
			ordered = append(ordered, a)
		}
	}

	// parents maps an external id to the first account of the row that carries
	// it, the one children nest under.
	parents := map[string]*Input[DebtAccount]{}
	for _, a := range ordered {
		if id := a.Value.ExternalID; a.Value.ParentExternalID == "" && id != "" && parents[id] == nil {
			parents[id] = a
		}
	}

	for _, a := range ordered {
		if a.Failed() {
			continue
		}
		extID := a.Value.ExternalID
		rec, inDB := existing[extID]
		switch {
		case inBulk[extID] || (inDB && !rec.writtenBy(p.BulkID, r.Number)):
			a.Messages.add("external_id", MsgTaken)
			continue
		case r.Customer.Failed():
			a.Messages.add("customer", MsgCustomerFailed)
			continue
		}
		var parentID uuid.UUID
		if ref := a.Value.ParentExternalID; ref != "" {
			parent := parents[ref]
			if parent == nil || parent.Failed() {
				a.Messages.add("parent_external_id", MsgParentFailed)
				continue
			}
			parentID = parent.Outcome.ID
		}
		inBulk[extID] = true
		if inDB {
			a.Outcome = Outcome{Action: ActionCreated, ID: rec.ID}
			continue
		}
		a.Outcome = Outcome{Action: ActionCreated, ID: uuid.New()}
		p.DebtAccounts = append(p.DebtAccounts, NewDebtAccount{
			ID: a.Outcome.ID, Row: r.Number, CustomerID: r.Customer.Outcome.ID, ParentID: parentID, DebtAccount: a.Value,
		})
	}
}

// ObjectError is one failed object in the errors report: the object as
// submitted and its messages by field.
type ObjectError struct {
	Data     json.RawMessage `json:"data"`
	Messages Messages        `json:"messages"`
}

// RowErrors is the errors report of one row, each section a list of failed
// objects, empty when the section is fine.
type RowErrors struct {
	Customer           []ObjectError `json:"customer"`
	Location           []ObjectError `json:"location"`
	ParentDebtAccounts []ObjectError `json:"parent_debt_accounts"`
	DebtAccounts       []ObjectError `json:"debt_accounts"`
}

// Errors returns the row's errors report and whether the row failed at all.
func (r *Row) Errors() (RowErrors, bool) {
	e := RowErrors{Customer: []ObjectError{}, Location: []ObjectError{}, ParentDebtAccounts: []ObjectError{}, DebtAccounts: []ObjectError{}}
	failed := false
	add := func(list *[]ObjectError, raw json.RawMessage, m Messages) {
		if len(m) > 0 {
			*list = append(*list, ObjectError{Data: raw, Messages: m})
			failed = true
		}
	}
	add(&e.Customer, r.Customer.Raw, r.Customer.Messages)
	if r.Location != nil {
		add(&e.Location, r.Location.Raw, r.Location.Messages)
	}
	for _, a := range r.ParentDebtAccounts {
		add(&e.ParentDebtAccounts, a.Raw, a.Messages)
	}
	for _, a := range r.DebtAccounts {
		add(&e.DebtAccounts, a.Raw, a.Messages)
	}
	return e, failed
}

// Written counts the records the plan's import stores, by table: the objects
// it created, including those an interrupted attempt of the same bulk wrote
// already. Reused customers and locations are not counted.
func (p *Plan) Written() (locations, customers, debtAccounts int) {
	for _, r := range p.Rows {
		if r.Location != nil && r.Location.Action() == ActionCreated {
			locations++
		}
		if r.Customer.Action() == ActionCreated {
			customers++
		}
		for _, list := range [][]*Input[DebtAccount]{r.ParentDebtAccounts, r.DebtAccounts} {
			for _, a := range list {
				if a.Action() == ActionCreated {
					debtAccounts++
				}
			}
		}
	}
	return locations, customers, debtAccounts
}
