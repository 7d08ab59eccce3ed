// Package bulkgen generates realistic, deterministic bulk submissions for
// benchmarks and load tests: the same seed always gives the same rows.
package bulkgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/bulkd/bulkd/pkg/bulk"
)

// Options shape a generated bulk.
type Options struct {
	Seed     uint64 // the same seed gives the same rows
	Rows     int    // customers, one per row
	Accounts int    // debt accounts per customer: one parent, the rest nested under it
	// Prefix makes external ids unique across bulks: rows of bulks with
	// different prefixes never collide.
	Prefix string
	// Locations is how many distinct locations the customers share (0: 1 per 10 customers).
	Locations int
}

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "John"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Ritchie", "Allen", "Backus"}
	cities     = []string{"Springfield", "Riverton", "Fairview", "Georgetown", "Salem", "Madison", "Clinton", "Franklin"}
)

// Body returns the JSON array of rows, ready to POST.
func Body(o Options) []byte {
	b, err := json.Marshal(Rows(o))
	if err != nil {
		panic(fmt.Sprintf("bulkgen: %v", err)) // only maps of strings and numbers: cannot fail
	}
	return b
}

// Rows returns the rows as Go values.
func Rows(o Options) []map[string]any {
	r := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	locations := o.Locations
	if locations == 0 {
		locations = max(1, o.Rows/10)
	}
	rows := make([]map[string]any, o.Rows)
	for i := range rows {
		first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		cust := fmt.Sprintf("%scust-%d", o.Prefix, i)
		accounts := make([]any, 0, o.Accounts)
		parent := fmt.Sprintf("%sacct-%d-0", o.Prefix, i)
		for a := 0; a < o.Accounts; a++ {
			balance := float64(r.IntN(1_000_000)) / 100
			acct := map[string]any{
				"external_id":             fmt.Sprintf("%sacct-%d-%d", o.Prefix, i, a),
				"external_account_number": fmt.Sprintf("AN%010d", r.IntN(1e9)),
				"balance":                 balance,
				"current_balance":         balance,
				"billing_type":            []string{bulk.BillingTypes[r.IntN(len(bulk.BillingTypes))]},
				"metadata":                map[string]any{"portfolio": fmt.Sprintf("P%d", r.IntN(20)), "priority": r.IntN(5)},
			}
			if a > 0 {
				acct["parent_external_id"] = parent
			}
			accounts = append(accounts, acct)
		}
		rows[i] = map[string]any{
			"customer": map[string]any{
				"external_id":   cust,
				"name":          first + " " + last,
				"email":         fmt.Sprintf("%s.%s%d@example.com", first, last, i),
				"phone":         fmt.Sprintf("+1-555-%03d-%04d", r.IntN(1000), r.IntN(10000)),
				"date_of_birth": fmt.Sprintf("%d-%02d-%02d", 1940+r.IntN(60), 1+r.IntN(12), 1+r.IntN(28)),
				"ssn_last4":     fmt.Sprintf("%04d", r.IntN(10000)),
				"address": map[string]any{
					"line1": fmt.Sprintf("%d Main St", 1+r.IntN(9999)), "city": cities[r.IntN(len(cities))],
					"state": "CA", "postal_code": fmt.Sprintf("%05d", r.IntN(100000)), "country": "US", "is_primary": true,
				},
				"metadata": map[string]any{"segment": fmt.Sprintf("S%d", r.IntN(8)), "score": r.IntN(850)},
			},
			"location":      map[string]any{"external_id": fmt.Sprintf("%sloc-%d", o.Prefix, r.IntN(locations)), "name": cities[r.IntN(len(cities))] + " office"},
			"debt_accounts": accounts,
		}
	}
	return rows
}
