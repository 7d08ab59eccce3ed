package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// recordsBench starts bulkd without a rate limit, imports a customer with
// 10 debt accounts and returns the key and the ids of the customer and of
// its first account.
func recordsBench(b *testing.B) (s *service, key, customer, account string) {
	s = startService(b, "RATE_LIMIT=0")
	_, key = s.newOrg(b, "Bench", "bench@example.com")
	var accounts []string
	for i := range 10 {
		accounts = append(accounts, fmt.Sprintf(`{"external_id": "a%d", "balance": 100, "billing_type": ["settlement"]}`, i))
	}
	s.waitCompleted(b, key, s.submit(b, key, []byte(`[{"customer": {"external_id": "c1", "name": "Ann"}, "location": {"external_id": "l1"},
		"debt_accounts": [`+strings.Join(accounts, ",")+`]}]`)))
	var v struct{ Data []struct{ ID string } }
	r := s.request(b, http.MethodGet, "/api/v1/customers?external_id=c1", nil, bearer(key))
	if err := json.Unmarshal(r.body, &v); err != nil || len(v.Data) != 1 {
		b.Fatalf("customer: %s", r.body)
	}
	r = s.request(b, http.MethodGet, "/api/v1/debt_accounts?external_id=a0", nil, bearer(key))
	var a struct{ Data []struct{ ID string } }
	if err := json.Unmarshal(r.body, &a); err != nil || len(a.Data) != 1 {
		b.Fatalf("account: %s", r.body)
	}
	return s, key, v.Data[0].ID, a.Data[0].ID
}

// measure runs op per iteration and reports operations per second (ops
// records written or read per iteration) and the p50/p99 of one iteration.
func measure(b *testing.B, ops int, op func(i int)) {
	var took []time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		op(i)
		took = append(took, time.Since(start))
		i++
	}
	slices.Sort(took)
	b.ReportMetric(float64(i*ops)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

func patchBody(i int) string {
	return fmt.Sprintf(`[{"op": "replace", "path": "/current_balance", "value": %d}]`, i%100)
}

// BenchmarkRecordsGetCustomer reads a customer with its location and 10
// debt accounts.
func BenchmarkRecordsGetCustomer(b *testing.B) {
	s, key, customer, _ := recordsBench(b)
	measure(b, 1, func(int) {
		if r := s.request(b, http.MethodGet, "/api/v1/customers/"+customer, nil, bearer(key)); r.status != http.StatusOK {
			b.Fatalf("GET: %d %s", r.status, r.body)
		}
	})
}

// BenchmarkRecordsPatch patches one debt account.
func BenchmarkRecordsPatch(b *testing.B) {
	s, key, _, account := recordsBench(b)
	measure(b, 1, func(i int) {
		if r := s.request(b, http.MethodPatch, "/api/v1/debt_accounts/"+account, patchBody(i), bearer(key), jsonPatch); r.status != http.StatusOK {
			b.Fatalf("PATCH: %d %s", r.status, r.body)
		}
	})
}

// BenchmarkRecords100SinglePatches is 100 PATCH requests, one after the
// other, of the customer's 10 accounts: the batch's work without it.
func BenchmarkRecords100SinglePatches(b *testing.B) {
	s, key, _, _ := recordsBench(b)
	ids := accountIDs(b, s, key)
	measure(b, 100, func(i int) {
		for j := range 100 {
			if r := s.request(b, http.MethodPatch, "/api/v1/debt_accounts/"+ids[j%10], patchBody(i+j), bearer(key), jsonPatch); r.status != http.StatusOK {
				b.Fatalf("PATCH: %d %s", r.status, r.body)
			}
		}
	})
}

// BenchmarkRecordsBatch100Patches is one batch of 100 patches of the
// customer's 10 accounts (10 each).
func BenchmarkRecordsBatch100Patches(b *testing.B) {
	s, key, _, _ := recordsBench(b)
	ids := accountIDs(b, s, key)
	measure(b, 100, func(i int) {
		ops := make([]string, 100)
		for j := range ops {
			ops[j] = fmt.Sprintf(`{"operation": "patch", "resource": "debt_accounts", "id": "%s", "patch_directives": %s}`, ids[j%10], patchBody(i+j))
		}
		r := s.request(b, http.MethodPost, "/api/v1/batch", `{"operations": [`+strings.Join(ops, ",")+`]}`, bearer(key), jsonBody)
		var a batchAnswer
		if err := json.Unmarshal(r.body, &a); err != nil || r.status != http.StatusOK || a.SuccessCount+a.ErrorCount != 100 {
			b.Fatalf("batch: %d %.300s", r.status, r.body)
		}
	})
}

func accountIDs(b *testing.B, s *service, key string) []string {
	var v struct{ Data []struct{ ID string } }
	r := s.request(b, http.MethodGet, "/api/v1/debt_accounts", nil, bearer(key))
	if err := json.Unmarshal(r.body, &v); err != nil || len(v.Data) != 10 {
		b.Fatalf("accounts: %s", r.body)
	}
	var ids []string
	for _, d := range v.Data {
		ids = append(ids, d.ID)
	}
	return ids
}
