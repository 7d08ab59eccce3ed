package bulk

import (
	"encoding/json"

	"github.com/google/uuid"
)

// The outcome of an import, as data: what was done with each submitted
// object (an Action, the record's id, the messages of a failure), each row
// summed up (a RowStatus), and the two views of it that are stored and
// served, the errors report (RowErrors) and the results (ResultRow).

// Action is what an import did with one submitted object.
type Action string

// Actions an import takes on an object.
const (
	ActionCreated Action = "created" // written by this bulk
	ActionFound   Action = "found"   // an existing customer or location, reused as it is
	ActionFailed  Action = "failed"  // not written; its messages say why
	// ActionUpdated: an upsert changed the stored record.
	ActionUpdated Action = "updated"
	// ActionUnchanged: an upsert found the stored record already as
	// submitted, and left it (its version and updated_at) alone.
	ActionUnchanged Action = "unchanged"
	// ActionRolledBack: the object was fine, but an atomic import met an
	// error elsewhere and wrote nothing.
	ActionRolledBack Action = "rolled_back"
)

// RowStatus sums up what an import did with a row.
type RowStatus string

// Row statuses: failed when any object of the row failed, else created when
// anything was created, else unchanged (everything was found as it was).
const (
	RowCreated    RowStatus = "created"
	RowUpdated    RowStatus = "updated"
	RowUnchanged  RowStatus = "unchanged"
	RowFailed     RowStatus = "failed"
	RowRolledBack RowStatus = "rolled_back" // fine itself, but nothing of an atomic bulk was written
)

// ObjectResult is the outcome of one submitted object: what the import did
// with it, the id of the record it was written as or matched to (uuid.Nil
// when none), and, when it failed, why.
type ObjectResult struct {
	ExternalID string
	ID         uuid.UUID
	Action     Action
	Messages   Messages        // nil unless Action is ActionFailed
	Raw        json.RawMessage // the object as submitted, for the errors report
}

// Failed tells whether the object was left out.
func (o *ObjectResult) Failed() bool { return o.Action == ActionFailed }

// fail marks the object failed with one more message.
func (o *ObjectResult) fail(field, msg string) {
	if o.Messages == nil {
		o.Messages = Messages{}
	}
	o.Messages.add(field, msg)
	o.Action, o.ID = ActionFailed, uuid.Nil
}

// RowResult is the outcome of one submitted row, object by object, in the
// order submitted. Location is nil only for a row that is not an object.
type RowResult struct {
	Row                int
	Raw                json.RawMessage // the row as submitted
	Customer           ObjectResult
	Location           *ObjectResult
	ParentDebtAccounts []ObjectResult
	DebtAccounts       []ObjectResult
}

// objects calls f with every object of the row.
func (r *RowResult) objects(f func(*ObjectResult)) {
	f(&r.Customer)
	if r.Location != nil {
		f(r.Location)
	}
	for i := range r.ParentDebtAccounts {
		f(&r.ParentDebtAccounts[i])
	}
	for i := range r.DebtAccounts {
		f(&r.DebtAccounts[i])
	}
}

// Status sums up the row: failed when any object failed, else rolled back
// when an atomic import wrote nothing, else updated when any object was
// updated, else created when any was created, else unchanged.
func (r *RowResult) Status() RowStatus {
	rank := map[RowStatus]int{RowUnchanged: 0, RowCreated: 1, RowUpdated: 2, RowRolledBack: 3, RowFailed: 4}
	status := RowUnchanged
	r.objects(func(o *ObjectResult) {
		s := RowUnchanged
		switch o.Action {
		case ActionFailed:
			s = RowFailed
		case ActionRolledBack:
			s = RowRolledBack
		case ActionUpdated:
			s = RowUpdated
		case ActionCreated:
			s = RowCreated
		}
		if rank[s] > rank[status] {
			status = s
		}
	})
	return status
}

// newRowResult starts the result of a row from its validation: objects with
// messages have failed, the others are yet to be decided.
func newRowResult(r *Row) RowResult {
	res := RowResult{Row: r.Number, Raw: r.Raw, Customer: objectResult(r.Customer, r.Customer.Value.ExternalID)}
	if r.Location != nil {
		loc := objectResult(r.Location, r.Location.Value.ExternalID)
		res.Location = &loc
	}
	res.ParentDebtAccounts = accountResults(r.ParentDebtAccounts)
	res.DebtAccounts = accountResults(r.DebtAccounts)
	return res
}

func objectResult[T any](in *Input[T], externalID string) ObjectResult {
	o := ObjectResult{ExternalID: externalID, Raw: in.Raw}
	if in.Failed() {
		o.Action, o.Messages = ActionFailed, in.Messages
	}
	return o
}

func accountResults(inputs []*Input[DebtAccount]) []ObjectResult {
	if len(inputs) == 0 {
		return nil
	}
	out := make([]ObjectResult, len(inputs))
	for i, in := range inputs {
		out[i] = objectResult(in, in.Value.ExternalID)
	}
	return out
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

// Errors returns the row's errors report, the view of its failed objects, and
// whether the row failed at all.
func (r *RowResult) Errors() (RowErrors, bool) {
	e := RowErrors{Customer: []ObjectError{}, Location: []ObjectError{}, ParentDebtAccounts: []ObjectError{}, DebtAccounts: []ObjectError{}}
	failed := false
	add := func(list *[]ObjectError, o *ObjectResult) {
		if o.Failed() {
			*list = append(*list, ObjectError{Data: o.Raw, Messages: o.Messages})
			failed = true
		}
	}
	add(&e.Customer, &r.Customer)
	if r.Location != nil {
		add(&e.Location, r.Location)
	}
	for i := range r.ParentDebtAccounts {
		add(&e.ParentDebtAccounts, &r.ParentDebtAccounts[i])
	}
	for i := range r.DebtAccounts {
		add(&e.DebtAccounts, &r.DebtAccounts[i])
	}
	return e, failed
}

// Errors returns the errors report of the row's validation alone, before
// any plan: what makes its objects fail whatever the database holds.
func (r *Row) Errors() (RowErrors, bool) {
	res := newRowResult(r)
	return res.Errors()
}

// Wire returns the row as GET …/results shows it.
func (r *RowResult) Wire() ResultRow {
	w := ResultRow{Row: r.Row, Status: r.Status(), Customer: resultObject(&r.Customer),
		ParentDebtAccounts: resultObjects(r.ParentDebtAccounts), DebtAccounts: resultObjects(r.DebtAccounts)}
	if r.Location != nil {
		w.Location = resultObject(r.Location)
	}
	if errs, failed := r.Errors(); failed {
		w.Errors = &errs
	}
	return w
}

func resultObject(o *ObjectResult) *ResultObject {
	w := &ResultObject{Action: o.Action}
	if o.ExternalID != "" {
		w.ExternalID = &o.ExternalID
	}
	if o.ID != uuid.Nil {
		w.ID = &o.ID
	}
	return w
}

func resultObjects(list []ObjectResult) []ResultObject {
	out := make([]ResultObject, len(list))
	for i := range list {
		out[i] = *resultObject(&list[i])
	}
	return out
}

// ResultRow is one row of GET /api/v1/bulk/{id}/results, the wire form of
// a RowResult: each object's external id, record id and action, and for a
// failed row the same errors report GET …/errors gives for it.
type ResultRow struct {
	Row                int            `json:"row"`
	Status             RowStatus      `json:"status"`
	Customer           *ResultObject  `json:"customer"`
	Location           *ResultObject  `json:"location"`
	ParentDebtAccounts []ResultObject `json:"parent_debt_accounts"`
	DebtAccounts       []ResultObject `json:"debt_accounts"`
	Errors             *RowErrors     `json:"errors"`
}

// ResultObject is one object of a ResultRow. ExternalID is nil when the
// object did not carry a valid one, ID when no record stands for it.
type ResultObject struct {
	ExternalID *string    `json:"external_id"`
	ID         *uuid.UUID `json:"id"`
	Action     Action     `json:"action"`
}
