// Package records is the service behind the records API: read, search,
// patch, create and delete the locations, customers and debt accounts that
// imports wrote, with versions for optimistic concurrency and the import's
// own validation rules (pkg/bulk) for every write.
package records

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/store"
)

// Resources are the record kinds the API serves, by their path segment.
const (
	Locations    = "locations"
	Customers    = "customers"
	DebtAccounts = "debt_accounts"
)

// singular names one record of each resource in messages.
var singular = map[string]string{Locations: "location", Customers: "customer", DebtAccounts: "debt account"}

// Singular names one record of resource in a message ("debt account"); ok
// is false when resource is none of the three.
func Singular(resource string) (name string, ok bool) {
	name, ok = singular[resource]
	return name, ok
}

// Provenance names the bulk rows that created a record and changed it last
// (all null for a record the records API created), and what changed it
// last: "bulk" or "api".
type Provenance struct {
	BulkID        *uuid.UUID `json:"bulk_id"`
	BulkRow       *int       `json:"bulk_row"`
	LastBulkID    *uuid.UUID `json:"last_bulk_id"`
	LastBulkRow   *int       `json:"last_bulk_row"`
	LastChangedBy string     `json:"last_changed_by"`
}

// Location is a location as the API shows it.
type Location struct {
	ID             uuid.UUID  `json:"id"`
	OrganizationID uuid.UUID  `json:"organization_id"`
	ExternalID     string     `json:"external_id"`
	Name           *string    `json:"name"`
	Version        int        `json:"version"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	Provenance     Provenance `json:"provenance"`
}

// CustomerViewAccounts bounds the debt accounts a customer's view includes,
// children counted: a customer may have any number of accounts (every bulk
// may add up to 20 000), and its answer, a patch's and a batch's, would
// grow with them. The view says when it leaves accounts out and links to
// the paged list of all of them.
const CustomerViewAccounts = 100

// Customer is a customer as the API shows it. A single customer includes
// its location and the first CustomerViewAccounts of its debt accounts as a
// tree, whether there are more, and the link to all of them; a list leaves
// these out.
type Customer struct {
	ID             uuid.UUID       `json:"id"`
	OrganizationID uuid.UUID       `json:"organization_id"`
	ExternalID     string          `json:"external_id"`
	LocationID     uuid.UUID       `json:"location_id"`
	Name           string          `json:"name"`
	Email          *string         `json:"email"`
	Phone          *string         `json:"phone"`
	DateOfBirth    *string         `json:"date_of_birth"`
	SSNLast4       *string         `json:"ssn_last4"`
	Address        json.RawMessage `json:"address"`
	Metadata       json.RawMessage `json:"metadata"`
	Version        int             `json:"version"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	Provenance     Provenance      `json:"provenance"`
	Location       *Location       `json:"location,omitempty"`
	DebtAccounts   *[]DebtAccount  `json:"debt_accounts,omitempty"`
	// DebtAccountsTruncated tells that the customer has more accounts than
	// DebtAccounts includes.
	DebtAccountsTruncated *bool          `json:"debt_accounts_truncated,omitempty"`
	Links                 *CustomerLinks `json:"links,omitempty"`
	etag                  string         // of the customer and what it includes
}

// CustomerLinks are where a customer's view leads: the paged list of all
// of its debt accounts.
type CustomerLinks struct {
	DebtAccounts string `json:"debt_accounts"`
}

// DebtAccount is a debt account as the API shows it; balances are exact
// decimal numbers. In a customer's tree a top-level account lists its
// children.
type DebtAccount struct {
	ID                    uuid.UUID       `json:"id"`
	OrganizationID        uuid.UUID       `json:"organization_id"`
	ExternalID            string          `json:"external_id"`
	CustomerID            uuid.UUID       `json:"customer_id"`
	ParentID              *uuid.UUID      `json:"parent_id"`
	ParentExternalID      *string         `json:"parent_external_id"`
	ExternalAccountNumber *string         `json:"external_account_number"`
	Balance               json.Number     `json:"balance"`
	CurrentBalance        json.Number     `json:"current_balance"`
	BillingType           []string        `json:"billing_type"`
	Metadata              json.RawMessage `json:"metadata"`
	Version               int             `json:"version"`
	CreatedAt             time.Time       `json:"created_at"`
	UpdatedAt             time.Time       `json:"updated_at"`
	Provenance            Provenance      `json:"provenance"`
	Children              *[]DebtAccount  `json:"children,omitempty"`
}

// ETag is the location's entity tag: its version.
func (l Location) ETag() string { return versionTag(l.Version) }

// ETag is the debt account's entity tag: its version.
func (a DebtAccount) ETag() string { return versionTag(a.Version) }

// ETag is the customer's entity tag: its version and a hash of the
// versions of what it includes, so that a change of its location or of any
// of its accounts (or one added or removed) changes it too. A customer of a
// list, which includes nothing, has its version alone.
func (c Customer) ETag() string {
	if c.etag != "" {
		return c.etag
	}
	return versionTag(c.Version)
}

func versionTag(v int) string { return `"` + strconv.Itoa(v) + `"` }

func provenance(bulkID *uuid.UUID, bulkRow *int, p models.Provenance) Provenance {
	return Provenance{BulkID: bulkID, BulkRow: bulkRow, LastBulkID: p.LastBulkID, LastBulkRow: p.LastBulkRow, LastChangedBy: p.LastChangedBy}
}

func newLocation(l models.Location) Location {
	return Location{ID: l.ID, OrganizationID: l.OrganizationID, ExternalID: l.ExternalID, Name: l.Name,
		Version: l.Version, CreatedAt: l.CreatedAt, UpdatedAt: l.UpdatedAt,
		Provenance: provenance(l.BulkID, l.BulkRow, l.Provenance)}
}

func newCustomer(c models.Customer) Customer {
	v := Customer{ID: c.ID, OrganizationID: c.OrganizationID, ExternalID: c.ExternalID, LocationID: c.LocationID,
		Name: c.Name, Email: c.Email, Phone: c.Phone, SSNLast4: c.SSNLast4,
		Address: jsonOrNull(c.Address), Metadata: jsonOrNull(c.Metadata),
		Version: c.Version, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Provenance: provenance(c.BulkID, c.BulkRow, c.Provenance)}
	if c.DateOfBirth != nil {
		d := c.DateOfBirth.Format(time.DateOnly)
		v.DateOfBirth = &d
	}
	return v
}

func newDebtAccount(a store.DebtAccountRecord) DebtAccount {
	billing := []string(a.BillingType)
	if billing == nil {
		billing = []string{}
	}
	return DebtAccount{ID: a.ID, OrganizationID: a.OrganizationID, ExternalID: a.ExternalID, CustomerID: a.CustomerID,
		ParentID: a.ParentID, ParentExternalID: a.ParentExternalID, ExternalAccountNumber: a.ExternalAccountNumber,
		Balance: json.Number(a.Balance), CurrentBalance: json.Number(a.CurrentBalance), BillingType: billing,
		Metadata: jsonOrNull(a.Metadata), Version: a.Version, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
		Provenance: provenance(a.BulkID, a.BulkRow, a.Provenance)}
}

// jsonOrNull keeps an absent jsonb value a JSON null.
func jsonOrNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return b
}

// customerTree is the customer with its location and accounts (the first
// ones of its tree, as store.CustomerDebtAccounts reads them: more than
// CustomerViewAccounts tells that some are left out), each top-level
// account with its children, and its ETag: built on the versions of what
// the view includes, so that it changes whenever the view does.
func customerTree(c models.Customer, l models.Location, accounts []store.DebtAccountRecord) Customer {
	truncated := len(accounts) > CustomerViewAccounts
	if truncated {
		accounts = accounts[:CustomerViewAccounts]
	}
	v := newCustomer(c)
	loc := newLocation(l)
	v.Location = &loc
	v.DebtAccountsTruncated = &truncated
	v.Links = &CustomerLinks{DebtAccounts: "/api/v1/customers/" + c.ID.String() + "/debt_accounts"}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s:%d;%t;", l.ID, l.Version, truncated)
	byParent := map[uuid.UUID][]DebtAccount{}
	var top []DebtAccount
	for _, a := range accounts {
		fmt.Fprintf(h, "%s:%d;", a.ID, a.Version)
		va := newDebtAccount(a)
		if a.ParentID != nil {
			byParent[*a.ParentID] = append(byParent[*a.ParentID], va)
		} else {
			top = append(top, va)
		}
	}
	tree := make([]DebtAccount, 0, len(top))
	for _, a := range top {
		children := byParent[a.ID]
		if children == nil {
			children = []DebtAccount{}
		}
		a.Children = &children
		tree = append(tree, a)
	}
	v.DebtAccounts = &tree
	v.etag = fmt.Sprintf(`"%d-%016x"`, c.Version, h.Sum64())
	return v
}
