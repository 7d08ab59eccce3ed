package bulk

import "github.com/google/uuid"

// Existing is what the organization's data already holds under the external
// ids that a bulk names, as read by the store before planning.
type Existing struct {
	Locations    map[string]Record
	Customers    map[string]Record
	DebtAccounts map[string]Record
}

// Record identifies a stored record and the bulk row that wrote it. For an
// upsert, the store also reads what the plan checks of a stored debt
// account: its customer, its parent, and whether it has children.
type Record struct {
	ID      uuid.UUID
	BulkID  uuid.UUID
	BulkRow int

	CustomerID uuid.UUID
	ParentID   uuid.UUID
	Children   int // stored accounts nested under it
}

// writtenBy tells whether this record was written by the given bulk row: a
// retried import then treats it as its own work rather than as "taken".
func (r Record) writtenBy(bulkID uuid.UUID, row int) bool {
	return r.BulkID == bulkID && r.BulkRow == row
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

// LocationUpdate is an upsert's change to a stored location: the fields the
// bulk carried (Location.Present), which the store applies over the stored
// values. Row is the bulk row that changed it last.
type LocationUpdate struct {
	ID  uuid.UUID
	Row int
	Location
}

// CustomerUpdate is an upsert's change to a stored customer; its location is
// the one of its row.
type CustomerUpdate struct {
	ID         uuid.UUID
	Row        int
	LocationID uuid.UUID
	Customer
}

// DebtAccountUpdate is an upsert's change to a stored debt account. ParentID
// applies when Present has FieldParentExternalID (uuid.Nil: top level).
type DebtAccountUpdate struct {
	ID       uuid.UUID
	Row      int
	ParentID uuid.UUID
	DebtAccount
}

// Plan is what an import writes, new records in dependency order (parents
// before children), and the outcome of every submitted row, in order.
type Plan struct {
	BulkID  uuid.UUID
	Options Options
	// RolledBack: the import is atomic and an object failed, so nothing is
	// written.
	RolledBack   bool
	Results      []RowResult
	Locations    []NewLocation
	Customers    []NewCustomer
	DebtAccounts []NewDebtAccount
	// An upsert's changes to stored records. Whether each changes anything
	// is for the store to tell (Settle): their objects are unchanged until
	// then.
	LocationUpdates    []LocationUpdate
	CustomerUpdates    []CustomerUpdate
	DebtAccountUpdates []DebtAccountUpdate

	// Where each customer and location of the bulk is planned, by external
	// id, so that later rows naming it again add their fields to it.
	locationAt, customerAt map[string]target
	// movedAway counts, by stored account, its stored children that the
	// bulk moves elsewhere (so far): an account whose children all leave
	// may be nested itself.
	movedAway map[uuid.UUID]int
}

// target is where a customer or location is planned: new (an index into the
// plan's new records) or an update of a stored one.
type target struct {
	update bool
	index  int
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
// reused or fails, given what already exists, and returns the decisions as
// data: the rows are only read, so planning them twice gives the same plan.
// Rows are taken in order, so the first occurrence of an external id in a
// bulk wins and later ones are "taken". Records this bulk wrote in an earlier
// attempt count as created by it, which makes a retried import report
// exactly what the first one would.
//
// An atomic plan with any failed object writes nothing, and reports every
// other object rolled back. The store then applies the plan, or for a
// validate-only one compares it with what is stored, and settles it.
func NewPlan(bulkID uuid.UUID, rows []*Row, existing Existing, opts Options) *Plan {
	p := &Plan{BulkID: bulkID, Options: opts, Results: make([]RowResult, len(rows)),
		locationAt: map[string]target{}, customerAt: map[string]target{}, movedAway: map[uuid.UUID]int{}}
	locations := map[string]uuid.UUID{}
	customers := map[string]uuid.UUID{}
	accounts := map[string]bool{}
	for i, r := range rows {
		res := &p.Results[i]
		*res = newRowResult(r)
		if opts.Mode == ModeUpsert {
			p.upsertLocation(r, res, existing.Locations, locations)
			p.upsertCustomer(r, res, existing.Customers, customers)
		} else {
			p.planLocation(r, res, existing.Locations, locations)
			p.planCustomer(r, res, existing.Customers, customers)
		}
		p.planDebtAccounts(r, res, existing.DebtAccounts, accounts)
	}
	if opts.Atomic && p.anyFailed() {
		p.rollBack()
	}
	return p
}

// Settle completes the plan once the store has applied it, or for a
// validate-only plan compared it with the stored records: updated holds the
// ids of the stored records its updates change. A validate-only plan then
// writes nothing and names no record that does not exist.
func (p *Plan) Settle(updated map[uuid.UUID]bool) {
	p.setUpdated(updated)
	if p.Options.ValidateOnly {
		p.dryRun()
	}
}

// Writes tells whether the plan writes any record.
func (p *Plan) Writes() bool {
	return len(p.Locations)+len(p.Customers)+len(p.DebtAccounts)+
		len(p.LocationUpdates)+len(p.CustomerUpdates)+len(p.DebtAccountUpdates) > 0
}

// setUpdated settles the objects of the plan's updates: those whose record
// the store found changed by them (updated) are ActionUpdated, the others
// stay ActionUnchanged.
func (p *Plan) setUpdated(updated map[uuid.UUID]bool) {
	for i := range p.Results {
		p.Results[i].objects(func(o *ObjectResult) {
			if o.Action == ActionUnchanged && updated[o.ID] {
				o.Action = ActionUpdated
			}
		})
	}
}

func (p *Plan) anyFailed() bool {
	for i := range p.Results {
		if p.Results[i].Status() == RowFailed {
			return true
		}
	}
	return false
}

// rollBack drops every write: the objects that would have been written or
// reused are reported rolled back; a record that exists keeps its id.
func (p *Plan) rollBack() {
	p.RolledBack = true
	p.dropWrites()
	for i := range p.Results {
		p.Results[i].objects(func(o *ObjectResult) {
			if o.Failed() {
				return
			}
			if o.Action == ActionCreated {
				o.ID = uuid.Nil
			}
			o.Action = ActionRolledBack
		})
	}
}

// dropWrites leaves the plan writing nothing.
func (p *Plan) dropWrites() {
	p.Locations, p.Customers, p.DebtAccounts = nil, nil, nil
	p.LocationUpdates, p.CustomerUpdates, p.DebtAccountUpdates = nil, nil, nil
}

// dryRun drops every write, keeping the actions: an object to be created
// has no record, so no id, and neither has an object that reuses one of
// them (a location created by an earlier row of the bulk).
func (p *Plan) dryRun() {
	planned := map[uuid.UUID]bool{}
	for _, l := range p.Locations {
		planned[l.ID] = true
	}
	for _, c := range p.Customers {
		planned[c.ID] = true
	}
	p.dropWrites()
	for i := range p.Results {
		p.Results[i].objects(func(o *ObjectResult) {
			if o.Action == ActionCreated || planned[o.ID] {
				o.ID = uuid.Nil
			}
		})
	}
}

// foundOrCreated settles a customer or location: reused when the bulk or the
// database already has it, otherwise created with a new id.
func (p *Plan) foundOrCreated(o *ObjectResult, row int, existing map[string]Record, inBulk map[string]uuid.UUID) (isNew bool) {
	extID := o.ExternalID
	if id, ok := inBulk[extID]; ok {
		o.Action, o.ID = ActionFound, id
		return false
	}
	if rec, ok := existing[extID]; ok {
		inBulk[extID] = rec.ID
		o.Action, o.ID = ActionFound, rec.ID
		if rec.writtenBy(p.BulkID, row) {
			o.Action = ActionCreated
		}
		return false
	}
	o.Action, o.ID = ActionCreated, newID()
	inBulk[extID] = o.ID
	return true
}

func (p *Plan) planLocation(r *Row, res *RowResult, existing map[string]Record, inBulk map[string]uuid.UUID) {
	loc := res.Location
	if loc == nil || loc.Failed() {
		return
	}
	if p.foundOrCreated(loc, r.Number, existing, inBulk) {
		p.Locations = append(p.Locations, NewLocation{ID: loc.ID, Row: r.Number, Location: r.Location.Value})
	}
}

// customerPlannable tells whether the row's customer is to be planned: it
// passed validation and its location did too. A customer belongs to a
// location: writing it without one would leave a record that a corrected
// resubmission could never attach.
func customerPlannable(res *RowResult) bool {
	if res.Customer.Failed() {
		return false
	}
	if res.Location == nil || res.Location.Failed() {
		res.Customer.fail("location", MsgLocationFailed)
		return false
	}
	return true
}

func (p *Plan) planCustomer(r *Row, res *RowResult, existing map[string]Record, inBulk map[string]uuid.UUID) {
	c := &res.Customer
	if !customerPlannable(res) {
		return
	}
	if p.foundOrCreated(c, r.Number, existing, inBulk) {
		p.Customers = append(p.Customers, NewCustomer{ID: c.ID, Row: r.Number, LocationID: res.Location.ID, Customer: r.Customer.Value})
	}
}

// upsertLocation settles a location of an upsert: a stored one is updated
// with the fields submitted, a new one created. A later row naming it again
// adds its fields (the later value wins) and reports it found.
func (p *Plan) upsertLocation(r *Row, res *RowResult, existing map[string]Record, inBulk map[string]uuid.UUID) {
	loc := res.Location
	if loc == nil || loc.Failed() {
		return
	}
	v := r.Location.Value
	if at, ok := p.locationAt[v.ExternalID]; ok {
		loc.Action, loc.ID = ActionFound, inBulk[v.ExternalID]
		if at.update {
			u := &p.LocationUpdates[at.index]
			if v.Present != 0 {
				u.Row = r.Number // the row that changed it last
			}
			u.Location.apply(v)
		} else {
			p.Locations[at.index].Location.apply(v)
		}
		return
	}
	if rec, ok := existing[v.ExternalID]; ok {
		loc.Action, loc.ID = ActionUnchanged, rec.ID
		p.locationAt[v.ExternalID] = target{update: true, index: len(p.LocationUpdates)}
		p.LocationUpdates = append(p.LocationUpdates, LocationUpdate{ID: rec.ID, Row: r.Number, Location: v})
	} else {
		loc.Action, loc.ID = ActionCreated, newID()
		p.locationAt[v.ExternalID] = target{index: len(p.Locations)}
		p.Locations = append(p.Locations, NewLocation{ID: loc.ID, Row: r.Number, Location: v})
	}
	inBulk[v.ExternalID] = loc.ID
}

// upsertCustomer settles a customer of an upsert as upsertLocation does a
// location; the customer moves to its row's location. A customer to create
// needs the fields creating requires.
func (p *Plan) upsertCustomer(r *Row, res *RowResult, existing map[string]Record, inBulk map[string]uuid.UUID) {
	c := &res.Customer
	if !customerPlannable(res) {
		return
	}
	v, locationID := r.Customer.Value, res.Location.ID
	if at, ok := p.customerAt[v.ExternalID]; ok {
		c.Action, c.ID = ActionFound, inBulk[v.ExternalID]
		if at.update {
			u := &p.CustomerUpdates[at.index]
			if v.Present != 0 || u.LocationID != locationID {
				u.Row = r.Number // the row that changed it last
			}
			u.Customer.apply(v)
			u.LocationID = locationID
		} else {
			n := &p.Customers[at.index]
			n.Customer.apply(v)
			n.LocationID = locationID
		}
		return
	}
	if rec, ok := existing[v.ExternalID]; ok {
		c.Action, c.ID = ActionUnchanged, rec.ID
		p.customerAt[v.ExternalID] = target{update: true, index: len(p.CustomerUpdates)}
		p.CustomerUpdates = append(p.CustomerUpdates, CustomerUpdate{ID: rec.ID, Row: r.Number, LocationID: locationID, Customer: v})
	} else {
		if !v.Present.Has(FieldName) {
			c.fail("name", msgRequired("name"))
			return
		}
		c.Action, c.ID = ActionCreated, newID()
		p.customerAt[v.ExternalID] = target{index: len(p.Customers)}
		p.Customers = append(p.Customers, NewCustomer{ID: c.ID, Row: r.Number, LocationID: locationID, Customer: v})
	}
	inBulk[v.ExternalID] = c.ID
}

// apply sets the fields v carries.
func (l *Location) apply(v Location) {
	if v.Present.Has(FieldName) {
		l.Name = v.Name
	}
	l.Present |= v.Present
}

// apply sets the fields v carries.
func (c *Customer) apply(v Customer) {
	for _, f := range []struct {
		field Fields
		set   func()
	}{
		{FieldName, func() { c.Name = v.Name }},
		{FieldEmail, func() { c.Email = v.Email }},
		{FieldPhone, func() { c.Phone = v.Phone }},
		{FieldDateOfBirth, func() { c.DateOfBirth = v.DateOfBirth }},
		{FieldSSNLast4, func() { c.SSNLast4 = v.SSNLast4 }},
		{FieldAddress, func() { c.Address = v.Address }},
		{FieldMetadata, func() { c.Metadata = v.Metadata }},
	} {
		if v.Present.Has(f.field) {
			f.set()
		}
	}
	c.Present |= v.Present
}

// account pairs a submitted debt account with its result; listed tells
// that the row lists it in parent_debt_accounts.
type account struct {
	in     *Input[DebtAccount]
	out    *ObjectResult
	listed bool
}

func (p *Plan) planDebtAccounts(r *Row, res *RowResult, existing map[string]Record, inBulk map[string]bool) {
	// Parents first: explicit ones, then top-level debt accounts, then children.
	ordered := make([]account, 0, len(r.ParentDebtAccounts)+len(r.DebtAccounts))
	for i, a := range r.ParentDebtAccounts {
		ordered = append(ordered, account{a, &res.ParentDebtAccounts[i], true})
	}
	for i, a := range r.DebtAccounts {
		if a.Value.ParentExternalID == "" {
			ordered = append(ordered, account{a, &res.DebtAccounts[i], false})
		}
	}
	for i, a := range r.DebtAccounts {
		if a.Value.ParentExternalID != "" {
			ordered = append(ordered, account{a, &res.DebtAccounts[i], false})
		}
	}

	// parents maps an external id to the result of the first account of the
	// row that carries it, the one children nest under.
	parents := map[string]*ObjectResult{}
	for _, a := range ordered {
		if id := a.in.Value.ExternalID; a.in.Value.ParentExternalID == "" && id != "" && parents[id] == nil {
			parents[id] = a.out
		}
	}
	// An upsert keeps the parent of a stored account of debt_accounts that
	// names none: a parent of the row may then have one itself, which
	// nesting forbids. One listed in parent_debt_accounts is a parent, as the
	// row says: it moves to the top level.
	parentOf := map[*ObjectResult]uuid.UUID{}

	upsert := p.Options.Mode == ModeUpsert
	for _, a := range ordered {
		if a.out.Failed() {
			continue
		}
		v := a.in.Value
		rec, inDB := existing[v.ExternalID]
		stored := inDB && upsert
		switch {
		case inBulk[v.ExternalID] || (inDB && !upsert && !rec.writtenBy(p.BulkID, r.Number)):
			a.out.fail("external_id", MsgTaken)
			continue
		case res.Customer.Failed():
			a.out.fail("customer", MsgCustomerFailed)
			continue
		case stored && rec.CustomerID != res.Customer.ID:
			a.out.fail("customer", MsgOtherCustomer)
			continue
		case upsert && !stored && !v.Present.Has(FieldBalance|FieldBillingType):
			// Creating an account needs what an update may leave out.
			for _, f := range []struct {
				field Fields
				name  string
			}{{FieldBalance, "balance"}, {FieldBillingType, "billing_type"}} {
				if !v.Present.Has(f.field) {
					a.out.fail(f.name, msgRequired(f.name))
				}
			}
			continue
		}
		parentID := uuid.Nil
		if stored && !v.Present.Has(FieldParentExternalID) && !a.listed {
			parentID = rec.ParentID
		}
		if ref := v.ParentExternalID; ref != "" {
			parent := parents[ref]
			switch {
			case parent == nil || parent.Failed():
				a.out.fail("parent_external_id", MsgParentFailed)
				continue
			case parentOf[parent] != uuid.Nil: // a stored child the row leaves where it is
				a.out.fail("parent_external_id", MsgParentStoredNested)
				continue
			}
			parentID = parent.ID
		}
		if stored && parentID != uuid.Nil && rec.Children > p.movedAway[rec.ID] {
			a.out.fail("parent_external_id", MsgHasChildren)
			continue
		}
		if stored && rec.ParentID != uuid.Nil && parentID != rec.ParentID {
			p.movedAway[rec.ParentID]++
		}
		parentOf[a.out] = parentID
		inBulk[v.ExternalID] = true
		switch {
		case stored:
			a.out.Action, a.out.ID = ActionUnchanged, rec.ID
			u := DebtAccountUpdate{ID: rec.ID, Row: r.Number, ParentID: parentID, DebtAccount: v}
			u.Present |= FieldParentExternalID // the parent is settled: kept, moved or cleared
			p.DebtAccountUpdates = append(p.DebtAccountUpdates, u)
		case inDB:
			a.out.Action, a.out.ID = ActionCreated, rec.ID // written by an earlier attempt of this bulk
		default:
			a.out.Action, a.out.ID = ActionCreated, newID()
			p.DebtAccounts = append(p.DebtAccounts, NewDebtAccount{
				ID: a.out.ID, Row: r.Number, CustomerID: res.Customer.ID, ParentID: parentID, DebtAccount: v,
			})
		}
	}
}

// Written counts the records the plan's import stores, by table: the objects
// it created, including those an interrupted attempt of the same bulk wrote
// already. Reused customers and locations are not counted, nor anything of
// a plan that writes nothing.
func (p *Plan) Written() (locations, customers, debtAccounts int) {
	if p.RolledBack || p.Options.ValidateOnly {
		return 0, 0, 0
	}
	for i := range p.Results {
		r := &p.Results[i]
		if r.Location != nil && r.Location.Action == ActionCreated {
			locations++
		}
		if r.Customer.Action == ActionCreated {
			customers++
		}
		for _, list := range [][]ObjectResult{r.ParentDebtAccounts, r.DebtAccounts} {
			for _, a := range list {
				if a.Action == ActionCreated {
					debtAccounts++
				}
			}
		}
	}
	return locations, customers, debtAccounts
}

// newID is the id of a record the plan creates: a UUIDv7, time-ordered and
// increasing within the process, so that an import's inserts append to the
// end of each primary-key index instead of landing on random pages (which
// costs more as the index outgrows memory).
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }
