package models_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// TestEntitiesMatchTheSchema reads what an import wrote through the GORM
// entities: a column renamed in a migration, or a type GORM cannot scan
// (text[], numeric, jsonb), fails here.
func TestEntitiesMatchTheSchema(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	org, err := db.Store.CreateOrganization(t.Context(), "Acme", "ops@acme.example")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := db.Store.CreateBulk(t.Context(), store.NewBulk{OrganizationID: org.ID, Rows: testenv.SeedRows(t)})
	if err != nil {
		t.Fatal(err)
	}
	db.ImportBulk(t, b.ID)

	g, err := gorm.Open(postgres.Open(db.URL), &gorm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if sqlDB, err := g.DB(); err == nil {
		t.Cleanup(func() { sqlDB.Close() })
	}
	var loc models.Location
	var cust models.Customer
	var child, parent models.DebtAccount
	for _, q := range []struct {
		dest  any
		where string
	}{
		{&loc, "external_id = 'rerum'"},
		{&cust, "external_id = '70b440dc-5283-3bd5-bb93-8dc599f2288f'"},
		{&child, "external_id = 'vel'"},
		{&parent, "external_id = 'parent-external-id'"},
	} {
		if err := g.Where(q.where).Take(q.dest).Error; err != nil {
			t.Fatalf("read %T: %v", q.dest, err)
		}
	}
	if cust.LocationID != loc.ID || child.CustomerID != cust.ID || child.ParentID == nil || *child.ParentID != parent.ID {
		t.Errorf("relations: customer %+v, child %+v", cust, child)
	}
	if child.Balance != "100.00" || parent.CurrentBalance != "0.00" {
		t.Errorf("balances: %s, %s", child.Balance, parent.CurrentBalance)
	}
	if diff := cmp.Diff(models.StringArray{"partial-payment"}, child.BillingType); diff != "" {
		t.Errorf("billing type: %s", diff)
	}
	var meta map[string]string
	if err := json.Unmarshal(child.Metadata, &meta); err != nil || meta["et"] != "reprehenderit" {
		t.Errorf("metadata %s: %v", child.Metadata, err)
	}
	if cust.SSNLast4 == nil || *cust.SSNLast4 != "9098" || cust.DateOfBirth == nil || cust.DateOfBirth.Format("2006-01-02") != "1990-01-01" {
		t.Errorf("customer: %+v", cust)
	}
	if child.BulkID == nil || *child.BulkID != b.ID || child.BulkRow == nil || *child.BulkRow != 1 {
		t.Errorf("provenance: %v %v", child.BulkID, child.BulkRow)
	}
}
