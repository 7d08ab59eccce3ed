package store_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/page"
	"github.com/bulkd/bulkd/pkg/store"
)

// TestListBulksReadsOnlyItsPage fills one organization with 200 000 bulks
// (a few pending and failed among completed ones) and another with 20 000,
// and checks how Postgres runs the list's query: every page, filtered or
// not, first or later, is read from an index in the list's order, reading
// only the page's own bulks: no sequential scan, no sort, no bulk read and
// dropped by a filter. That is what makes a page take milliseconds however
// many bulks the organization has (README, "List bulks", for a million).
func TestListBulksReadsOnlyItsPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other, err := e.Store.CreateOrganization(ctx, "Other", "ops@other.example")
	if err != nil {
		t.Fatal(err)
	}
	// Bulk i of an organization was created i seconds before base; one in
	// 1000 is pending and one in 1000 failed.
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	fill := func(org uuid.UUID, n int) {
		t.Helper()
		_, err := e.Conn.Exec(ctx, `
			INSERT INTO bulks (id, organization_id, status, count, created_at, updated_at)
			SELECT gen_random_uuid(), $1,
			       CASE i % 1000 WHEN 0 THEN 'pending' WHEN 1 THEN 'failed' ELSE 'completed' END,
			       1, $2::timestamptz - i * interval '1 second', $2::timestamptz
			  FROM generate_series(1, $3::int) i`, org, base, n)
		if err != nil {
			t.Fatal(err)
		}
	}
	fill(e.org.ID, 200_000)
	fill(other.ID, 20_000)
	if _, err := e.Conn.Exec(ctx, `ANALYZE bulks`); err != nil {
		t.Fatal(err)
	}

	const limit = 51
	first, err := e.Store.ListBulks(ctx, e.org.ID, store.ListBulksParams{Page: page.Keyset{Limit: limit}})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != limit {
		t.Fatalf("first page has %d bulks, want %d", len(first), limit)
	}
	last := first[limit-1]
	after := &page.Position{CreatedAt: last.CreatedAt, ID: last.ID}
	at := func(seconds int) *time.Time { t := base.Add(-time.Duration(seconds) * time.Second); return &t }

	for _, tc := range []struct {
		name string
		p    store.ListBulksParams
		// want is the page as a plain query, one that reads the whole
		// organization, selects it.
		where    string
		branches int // index ranges merged
	}{
		{"first page", store.ListBulksParams{}, "true", 1},
		{"cursor page", store.ListBulksParams{Page: page.Keyset{After: after}}, fmt.Sprintf("(created_at, id) < ('%s', '%s')", after.CreatedAt.Format(time.RFC3339Nano), after.ID), 1},
		{"pending", store.ListBulksParams{Statuses: []string{"pending"}}, "status = 'pending'", 1},
		{"pending, cursor page", store.ListBulksParams{Statuses: []string{"pending"}, Page: page.Keyset{After: &page.Position{CreatedAt: *at(100_000), ID: uuid.Max}}},
			"status = 'pending' AND created_at <= '" + at(100_000).Format(time.RFC3339) + "'", 1},
		{"pending or failed, in a time range", store.ListBulksParams{Statuses: []string{"failed", "pending"}, CreatedAfter: at(150_000), CreatedBefore: at(10_000)},
			"status IN ('pending', 'failed') AND created_at > '" + at(150_000).Format(time.RFC3339) + "' AND created_at < '" + at(10_000).Format(time.RFC3339) + "'", 2},
		{"completed, cursor page", store.ListBulksParams{Statuses: []string{"completed"}, Page: page.Keyset{After: after}}, fmt.Sprintf("status = 'completed' AND (created_at, id) < ('%s', '%s')", after.CreatedAt.Format(time.RFC3339Nano), after.ID), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.Page.Limit = limit
			got, err := e.Store.ListBulks(ctx, e.org.ID, p)
			if err != nil {
				t.Fatal(err)
			}
			var want []uuid.UUID
			rows, err := e.Conn.Query(ctx, `SELECT id FROM bulks WHERE organization_id = $1 AND `+tc.where+
				` ORDER BY created_at DESC, id DESC LIMIT $2`, e.org.ID, limit)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id uuid.UUID
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				want = append(want, id)
			}
			if rows.Err() != nil || len(want) == 0 {
				t.Fatalf("reference query: %v, %d bulks", rows.Err(), len(want))
			}
			ids := make([]uuid.UUID, len(got))
			for i, b := range got {
				ids[i] = b.ID
				if b.OrganizationID != e.org.ID {
					t.Fatalf("bulk %s of another organization listed", b.ID)
				}
			}
			if diff := cmp.Diff(want, ids); diff != "" {
				t.Errorf("page (-want +got):\n%s", diff)
			}

			raw, err := e.Store.ExplainListBulks(ctx, e.org.ID, p)
			if err != nil {
				t.Fatal(err)
			}
			var plans []struct{ Plan planNode }
			if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
				t.Fatalf("plan: %v\n%s", err, raw)
			}
			scans := 0
			plans[0].Plan.walk(func(n planNode) {
				switch {
				case n.NodeType == "Seq Scan", n.NodeType == "Bitmap Heap Scan", strings.Contains(n.NodeType, "Sort"):
					t.Errorf("plan has a %s:\n%s", n.NodeType, raw)
				case n.NodeType == "Index Scan" && n.RelationName == "bulks":
					scans++
					if !slices.Contains([]string{"bulks_organization_id_created_at_id_idx", "bulks_organization_id_status_created_at_id_idx"}, n.IndexName) {
						t.Errorf("scan of %s", n.IndexName)
					}
					// Only the page is read: at most a page per index
					// range, none of it dropped after reading.
					if n.ActualRows > limit || n.RowsRemovedByFilter > 0 {
						t.Errorf("index scan read %d bulks and dropped %d, for a page of %d:\n%s", n.ActualRows, n.RowsRemovedByFilter, limit, raw)
					}
				}
			})
			if scans != tc.branches {
				t.Errorf("%d index scans of bulks, want %d:\n%s", scans, tc.branches, raw)
			}
		})
	}
}

// The reconciler's look-up of stale unfinished bulks (store.UnfinishedBulks)
// still reads them from its partial index, whose predicate 0008 changed.
func TestUnfinishedBulksIndexServesTheReconciler(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.Conn.Exec(ctx, `
		INSERT INTO bulks (id, organization_id, status, count, created_at, updated_at)
		SELECT gen_random_uuid(), $1, CASE WHEN i % 1000 = 0 THEN 'pending' ELSE 'completed' END, 1,
		       now() - i * interval '1 second', now() - i * interval '1 second'
		  FROM generate_series(1, 20000) i`, e.org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Conn.Exec(ctx, `ANALYZE bulks`); err != nil {
		t.Fatal(err)
	}
	var plan string
	err = e.Conn.QueryRow(ctx, `EXPLAIN (FORMAT JSON) SELECT id FROM bulks
		WHERE status IN ('pending', 'processing') AND updated_at < now() - interval '1 minute' ORDER BY updated_at LIMIT 100`).Scan(&plan)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, `"Index Name": "bulks_unfinished_idx"`) {
		t.Errorf("the reconciler's query does not use bulks_unfinished_idx:\n%s", plan)
	}
}

// planNode is a node of EXPLAIN (FORMAT JSON), with what the test reads.
type planNode struct {
	NodeType            string     `json:"Node Type"`
	RelationName        string     `json:"Relation Name"`
	IndexName           string     `json:"Index Name"`
	ActualRows          int        `json:"Actual Rows"`
	RowsRemovedByFilter int        `json:"Rows Removed by Filter"`
	Plans               []planNode `json:"Plans"`
}

func (n planNode) walk(f func(planNode)) {
	f(n)
	for _, c := range n.Plans {
		c.walk(f)
	}
}
