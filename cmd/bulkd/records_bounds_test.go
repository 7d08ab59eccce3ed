package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/bulkd/bulkd/pkg/records"
)

// bigCustomerBulk is one bulk of rows that all name the customer "big": row
// i brings a top-level account p<i> with two children p<i>-a and p<i>-b, so
// the customer ends with 3×rows accounts.
func bigCustomerBulk(rows int) []byte {
	var b strings.Builder
	b.WriteString("[")
	for i := range rows {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"customer": {"external_id": "big", "name": "Big"}, "location": {"external_id": "l-big"},
			"debt_accounts": [{"external_id": "p%02d", "balance": 1, "billing_type": ["settlement"]},
				{"external_id": "p%02d-a", "parent_external_id": "p%02d", "balance": 1, "billing_type": ["settlement"]},
				{"external_id": "p%02d-b", "parent_external_id": "p%02d", "balance": 1, "billing_type": ["settlement"]}]}`, i, i, i, i, i)
	}
	b.WriteString("]")
	return []byte(b.String())
}

// customerView reads a customer as the API shows one: its tree of accounts
// (each top-level one's children), whether accounts are left out, and the
// link to all of them.
type customerView struct {
	ID           string `json:"id"`
	DebtAccounts []struct {
		ExternalID string `json:"external_id"`
		Children   []struct {
			ExternalID       string `json:"external_id"`
			ParentExternalID string `json:"parent_external_id"`
		} `json:"children"`
	} `json:"debt_accounts"`
	Truncated *bool `json:"debt_accounts_truncated"`
	Links     struct {
		DebtAccounts string `json:"debt_accounts"`
	} `json:"links"`
}

// accounts are the external ids of the view's tree, parents before their
// children.
func (v customerView) accounts() []string {
	var out []string
	for _, a := range v.DebtAccounts {
		out = append(out, a.ExternalID)
		for _, c := range a.Children {
			out = append(out, c.ExternalID)
		}
	}
	return out
}

func readCustomerView(t *testing.T, raw []byte) customerView {
	t.Helper()
	var v customerView
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%v: %.300s", err, raw)
	}
	return v
}

// A customer's answer includes at most records.CustomerViewAccounts of its
// accounts however many it has, says that it leaves some out, and links to
// the paged list of them all; the PATCH answer and a batch's result, which
// show the customer as GET does, are bounded alike. 150 accounts (50 rows
// of one parent and two children) make the customer bigger than the bound;
// the view is the first accounts of the tree, oldest first, each child
// under its parent.
func TestRecordsCustomerAnswerIncludesABoundedNumberOfAccounts(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	const rows = 50
	s.waitCompleted(t, key, s.submit(t, key, bigCustomerBulk(rows)))
	big := s.recordID(t, "customers", "big")
	const bound = records.CustomerViewAccounts
	if bound >= 3*rows {
		t.Fatalf("the bound is %d: the test needs a customer with more accounts than that", bound)
	}

	check := func(what string, v customerView) {
		t.Helper()
		got := v.accounts()
		if len(got) != bound || v.Truncated == nil || !*v.Truncated {
			t.Errorf("%s: %d accounts, truncated %v; want %d and true", what, len(got), v.Truncated, bound)
		}
		// The first accounts of the tree, in order: whole groups p00…p32,
		// then p33 alone.
		var want []string
		for i := 0; len(want) < bound; i++ {
			want = append(want, fmt.Sprintf("p%02d", i), fmt.Sprintf("p%02d-a", i), fmt.Sprintf("p%02d-b", i))
		}
		if want = want[:bound]; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: accounts %v, want the first %d of the tree", what, got, bound)
		}
		if v.Links.DebtAccounts != "/api/v1/customers/"+big+"/debt_accounts" {
			t.Errorf("%s: links.debt_accounts %q", what, v.Links.DebtAccounts)
		}
	}

	r := s.request(t, http.MethodGet, "/api/v1/customers/"+big, nil, bearer(key))
	if r.status != http.StatusOK {
		t.Fatalf("GET: %d %.300s", r.status, r.body)
	}
	var get struct{ Data json.RawMessage }
	_ = json.Unmarshal(r.body, &get)
	view := readCustomerView(t, get.Data)
	check("GET", view)

	// The link pages through every account, each once.
	seen := map[string]bool{}
	for next := view.Links.DebtAccounts; next != ""; {
		var ids []string
		ids, next = list(t, s.request(t, http.MethodGet, next, nil, bearer(key)))
		for _, id := range ids {
			if seen[id] {
				t.Errorf("%s listed twice", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != 3*rows {
		t.Errorf("the linked list has %d accounts, want %d", len(seen), 3*rows)
	}

	r = s.request(t, http.MethodPatch, "/api/v1/customers/"+big, `{"name": "Bigger"}`, bearer(key), mergePatch)
	if r.status != http.StatusOK {
		t.Fatalf("PATCH: %d %.300s", r.status, r.body)
	}
	_ = json.Unmarshal(r.body, &get)
	check("PATCH", readCustomerView(t, get.Data))

	rb := s.request(t, http.MethodPost, "/api/v1/batch", `{"operations": [{"operation": "patch", "resource": "customers", "id": "`+big+`",
		"patch_directives": [{"op": "replace", "path": "/name", "value": "Biggest"}]}]}`, bearer(key), jsonBody)
	var batch struct {
		Results []struct {
			Status int             `json:"status"`
			Object json.RawMessage `json:"object"`
		}
	}
	if err := json.Unmarshal(rb.body, &batch); err != nil || rb.status != http.StatusOK || len(batch.Results) != 1 || batch.Results[0].Status != http.StatusOK {
		t.Fatalf("batch: %d %.300s", rb.status, rb.body)
	}
	check("batch", readCustomerView(t, batch.Results[0].Object))

	// A customer within the bound shows every account and says so.
	r = s.request(t, http.MethodGet, "/api/v1/customers/"+s.recordID(t, "customers", "c1"), nil, bearer(key))
	_ = json.Unmarshal(r.body, &get)
	if v := readCustomerView(t, get.Data); len(v.accounts()) != 4 || v.Truncated == nil || *v.Truncated {
		t.Errorf("c1: %d accounts, truncated %v; want 4 and false", len(v.accounts()), v.Truncated)
	}
}
