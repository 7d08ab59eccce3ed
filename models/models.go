// Package models holds the GORM entities of bulkd's tables. They carry no
// behaviour beyond mapping columns; pkg/store decides how they are read and
// written.
package models

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// BulkStatus is where a bulk stands: pending (stored, its import not
// started), processing, then one of the final completed, failed or
// canceled. Its values are those of the bulks.status column and of the API.
type BulkStatus string

// Bulk statuses.
const (
	StatusPending    BulkStatus = "pending"
	StatusProcessing BulkStatus = "processing"
	StatusCompleted  BulkStatus = "completed"
	StatusFailed     BulkStatus = "failed"
	StatusCanceled   BulkStatus = "canceled"
)

// Finished tells whether the status is final: completed, failed or
// canceled. A finished bulk never changes status again; a client waiting for
// a bulk waits for one of these. The store's SQL for "not finished" says the
// same of the status column.
func (s BulkStatus) Finished() bool {
	return s != StatusPending && s != StatusProcessing
}

// Organization is a tenant: every record, key and bulk belongs to one.
//
// Every table of an organization's data is keyed by (organization_id, …),
// its foreign keys among them too (migration 0017), so that a distributed
// Postgres can spread them by organization; organizations and api_keys are
// keyed by id alone, as the tables a deployment copies to every node.
type Organization struct {
	ID          uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Name        string
	NotifyEmail string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// APIKey is an organization's key, stored as a SHA-256 hash; Prefix is the
// key's public start, used to find it and shown in listings.
type APIKey struct {
	ID             uuid.UUID `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	OrganizationID uuid.UUID `gorm:"type:uuid"`
	Prefix         string
	Hash           []byte
	CreatedAt      time.Time
	RevokedAt      *time.Time
	// LastUsedAt is when the key last authenticated a request, to within
	// a minute; nil if it never has.
	LastUsedAt *time.Time
}

// TableName keeps GORM from naming the table "api_keys" by guesswork.
func (APIKey) TableName() string { return "api_keys" }

// Bulk is one submission and its progress.
type Bulk struct {
	ID             uuid.UUID `gorm:"type:uuid;primaryKey"`
	OrganizationID uuid.UUID `gorm:"type:uuid;primaryKey"` // the key is (organization_id, id)
	Status         BulkStatus
	Count          int
	// The options it was submitted with (see bulk.Options).
	Mode         string
	Atomic       bool
	ValidateOnly bool
	Strict       bool
	// RolledBack: an atomic import met an error and wrote nothing.
	RolledBack    bool
	RowsSucceeded int
	RowsFailed    int
	// The rows by status: RowsSucceeded is their sum.
	RowsCreated   int
	RowsUpdated   int
	RowsUnchanged int
	// What the import wrote, by table (records it created; reused customers
	// and locations are not counted).
	LocationsWritten    int
	CustomersWritten    int
	DebtAccountsWritten int
	FailureReason       *string
	CreatedAt           time.Time
	UpdatedAt           time.Time
	StartedAt           *time.Time
	CompletedAt         *time.Time
	CanceledAt          *time.Time
	// ReportExpiredAt is when the bulk's rows as submitted and its results
	// were erased, RETENTION after it finished; nil while they are kept.
	ReportExpiredAt *time.Time
}

// Location is a place customers belong to.
type Location struct {
	ID             uuid.UUID `gorm:"type:uuid;primaryKey"`
	OrganizationID uuid.UUID `gorm:"type:uuid;primaryKey"` // the key is (organization_id, id)
	ExternalID     string
	Name           *string
	BulkID         *uuid.UUID `gorm:"type:uuid"`
	BulkRow        *int
	Provenance
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Provenance is what a record's version and last change are: Version counts
// its changes (1 when created; ETags are built on it), LastBulkID and
// LastBulkRow name the bulk row that changed it last, LastChangedBy whether
// its last change was a bulk's or the records API's.
type Provenance struct {
	Version       int        `gorm:"default:1"`
	LastBulkID    *uuid.UUID `gorm:"type:uuid"`
	LastBulkRow   *int
	LastChangedBy string `gorm:"default:bulk"`
}

// What changed a record last (Provenance.LastChangedBy).
const (
	ChangedByBulk = "bulk"
	ChangedByAPI  = "api"
)

// Customer is a debtor.
type Customer struct {
	ID             uuid.UUID `gorm:"type:uuid;primaryKey"`
	OrganizationID uuid.UUID `gorm:"type:uuid;primaryKey"` // the key is (organization_id, id)
	ExternalID     string
	LocationID     uuid.UUID `gorm:"type:uuid"`
	Name           string
	Email          *string
	Phone          *string
	DateOfBirth    *time.Time      `gorm:"type:date"`
	SSNLast4       *string         `gorm:"column:ssn_last4"`
	Address        json.RawMessage `gorm:"type:jsonb"`
	Metadata       json.RawMessage `gorm:"type:jsonb"`
	BulkID         *uuid.UUID      `gorm:"type:uuid"`
	BulkRow        *int
	Provenance
	CreatedAt time.Time
	UpdatedAt time.Time
}

// DebtAccount is an amount a customer owes, possibly nested under a parent
// account of the same customer. Balances are numeric(14,2), read as their
// exact decimal text.
type DebtAccount struct {
	ID                    uuid.UUID `gorm:"type:uuid;primaryKey"`
	OrganizationID        uuid.UUID `gorm:"type:uuid;primaryKey"` // the key is (organization_id, id)
	ExternalID            string
	CustomerID            uuid.UUID  `gorm:"type:uuid"`
	ParentID              *uuid.UUID `gorm:"type:uuid"`
	ExternalAccountNumber *string
	Balance               string          `gorm:"type:numeric(14,2)"`
	CurrentBalance        string          `gorm:"type:numeric(14,2)"`
	BillingType           StringArray     `gorm:"type:text[]"`
	Metadata              json.RawMessage `gorm:"type:jsonb"`
	BulkID                *uuid.UUID      `gorm:"type:uuid"`
	BulkRow               *int
	Provenance
	CreatedAt time.Time
	UpdatedAt time.Time
}

// StringArray maps a Postgres text[] for GORM, which has no array type of its own.
type StringArray []string

var pgTypes = pgtype.NewMap()

// Scan implements sql.Scanner.
func (a *StringArray) Scan(src any) error {
	if err := pgTypes.SQLScanner((*[]string)(a)).Scan(src); err != nil {
		return fmt.Errorf("models: scan text[]: %w", err)
	}
	return nil
}

// Value implements driver.Valuer; pgx encodes a []string as text[].
func (a StringArray) Value() (driver.Value, error) { return []string(a), nil }
