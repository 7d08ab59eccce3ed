package records

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
)

// If-None-Match compares weakly (a W/ tag names the record), If-Match
// strongly, taking a version unquoted as a list shows it; "*" names any.
func TestETagLists(t *testing.T) {
	t.Parallel()
	loc := Location{Version: 3}
	for _, tc := range []struct {
		header      string
		notModified bool // as If-None-Match
		matches     bool // as If-Match
	}{
		{`"3"`, true, true},
		{`W/"3"`, true, false},
		{`3`, false, true},
		{`"1", "3"`, true, true},
		{` "1" ,W/"3" `, true, false},
		{`*`, true, true},
		{`"4"`, false, false},
		{`"3`, false, false},
		{``, false, true}, // If-Match absent: no precondition
	} {
		if got := NotModified(tc.header, loc); got != tc.notModified {
			t.Errorf("If-None-Match %q: not modified %v, want %v", tc.header, got, tc.notModified)
		}
		var pre *PreconditionError
		err := precondition(tc.header, loc)
		if (err == nil) != tc.matches || (err != nil && (!errors.As(err, &pre) || pre.Version != 3 || pre.Current != `"3"`)) {
			t.Errorf("If-Match %q: %v, want a match %v", tc.header, err, tc.matches)
		}
	}
	// A customer's ETag covers what it includes; If-Match takes its version
	// alone too.
	c := Customer{Version: 2, etag: `"2-00ff"`}
	for _, h := range []string{`"2-00ff"`, `"2"`, `2`} {
		if err := precondition(h, c); err != nil {
			t.Errorf("customer If-Match %q: %v", h, err)
		}
	}
	if NotModified(`"2"`, c) {
		t.Errorf(`customer If-None-Match "2" is not its ETag, yet not modified`)
	}
}

// An unknown field reads as a strict import's, keyed by the field; one with
// an empty name is keyed by what holds it.
func TestUnknownFieldWording(t *testing.T) {
	t.Parallel()
	var v *ValidationError
	if err := unknownField("nickname", "patch", "#"); !errors.As(err, &v) ||
		!cmp.Equal(v.Messages, map[string][]string{"nickname": {"#: extraneous key [nickname] is not permitted"}}) {
		t.Errorf("unknown field: %v", err)
	}
	if got, want := bulk.MsgExtraneous("#/0/customer", "company"), "#/0/customer: extraneous key [company] is not permitted"; got != want {
		t.Errorf("the import's wording: %q, want %q", got, want)
	}
	if err := unknownField("", "object", "#/object"); !errors.As(err, &v) || v.Messages["object"] == nil || v.Messages[""] != nil ||
		strings.Contains(v.Error(), "  ") {
		t.Errorf("empty name: %v", err)
	}
}

// A list's filters are read for the resource: ids as UUIDs (another value
// is a FilterError naming it), text as it is, and only the resource's own.
func TestListFilters(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	customer := uuid.New()
	f, err := filter(ListParams{Filters: map[string]string{"external_id": "c1", "email": "a@b.example", "bulk_id": id.String(), "parent_id": "x"}},
		Filters(Customers, false))
	if err != nil || f.ExternalID != "c1" || f.Email != "a@b.example" || f.BulkID == nil || *f.BulkID != id || f.ParentID != nil {
		t.Errorf("customers' filters: %+v, %v", f, err)
	}
	_, err = filter(ListParams{Filters: map[string]string{"location_id": "nope"}}, Filters(Customers, false))
	var bad *FilterError
	if !errors.As(err, &bad) || bad.Param != "location_id" || !strings.Contains(bad.Message, "UUID") {
		t.Errorf("location_id=nope: %v", err)
	}
	f, err = filter(ListParams{Customer: &customer, Filters: map[string]string{"customer_id": id.String()}}, Filters(DebtAccounts, true))
	if err != nil || f.CustomerID == nil || *f.CustomerID != customer {
		t.Errorf("a customer's accounts filtered on another customer: %+v, %v", f, err)
	}
	if got := Filters(Locations, false); !cmp.Equal(got, []string{"external_id"}) {
		t.Errorf("locations' filters: %v", got)
	}
	if _, err := New(nil).List(t.Context(), uuid.New(), "bulks", ListParams{}); !errors.Is(err, ErrUnknownResource) {
		t.Errorf("List of no resource: %v", err)
	}
}

// A batch that is not one is refused before anything is done; an
// operation that is not one of the batch's shape is answered on its own.
func TestBatchShapes(t *testing.T) {
	t.Parallel()
	s := New(nil) // nothing here reaches the store
	var v *ValidationError
	for n, want := range map[int]string{-1: "The operations field is required.", 0: "between 1 and 100 operations; it has 0",
		101: "between 1 and 100 operations; it has 101"} {
		var ops []json.RawMessage
		if n >= 0 {
			ops = make([]json.RawMessage, n)
		}
		if _, err := s.Batch(t.Context(), uuid.New(), ops); !errors.As(err, &v) || !strings.Contains(v.Messages["operations"][0], want) {
			t.Errorf("%d operations: %v", n, err)
		}
	}
	for op, field := range map[string]string{
		`{"operation": "patch", "resource": "bulks", "id": "x"}`:                                                     "resource",
		`{"operation": "patch", "resource": "customers"}`:                                                            "id",
		`{"operation": "patch", "resource": "customers", "id": "x", "object": {}}`:                                   "",
		`{"operation": "create", "resource": "customers", "id": "x"}`:                                                "id",
		`{"operation": "merge", "resource": "customers", "id": "x"}`:                                                 "operation",
		`{"operation": "delete", "resource": "customers", "id": "` + uuid.NewString() + `", "patch_directives": []}`: "patch_directives",
		`{"operation": 1, "resource": "customers"}`:                                                                  "operation",
		`{"operation": "patch", "resource": "customers", "nope": 1}`:                                                 "nope",
	} {
		o := s.operation(t.Context(), uuid.New(), json.RawMessage(op))
		switch {
		case field == "" && !errors.Is(o.Err, ErrNotFound):
			t.Errorf("%s: %v, want not found, as its single request", op, o.Err)
		case field != "" && (!errors.As(o.Err, &v) || v.Messages[field] == nil):
			t.Errorf("%s: %v, want invalid %s", op, o.Err, field)
		}
	}
	if o := s.operation(t.Context(), uuid.New(), json.RawMessage(`[1]`)); !errors.As(o.Err, new(*MalformedError)) {
		t.Errorf("an operation that is no object: %v", o.Err)
	}
	if o := s.operation(t.Context(), uuid.New(), json.RawMessage(`{"operation": "patch", "resource": "customers", "nope": 1}`)); o.Op.Operation != "patch" ||
		!strings.Contains(o.Err.Error(), "#: extraneous key [nope] is not permitted") {
		t.Errorf("an operation with an unknown member: %+v", o)
	}
}

func TestCheckPatch(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat(`{"a":`, bulk.MaxDepth+1) + "1" + strings.Repeat("}", bulk.MaxDepth+1)
	for _, tc := range []struct {
		kind  PatchKind
		patch string
		ok    bool
	}{
		{JSONPatch, `[{"op": "remove", "path": "/name"}]`, true},
		{MergePatch, `{"name": "x"}`, true},
		{JSONPatch, `{"name": "x"}`, false},
		{MergePatch, `{`, false},
		{MergePatch, deep, false},
	} {
		if err := checkPatch(tc.kind, []byte(tc.patch)); (err == nil) != tc.ok {
			t.Errorf("%.40s: %v", tc.patch, err)
		}
	}
}

func TestIDOfAndOptional(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	for _, r := range []Record{Location{ID: id}, Customer{ID: id}, DebtAccount{ID: id}} {
		if IDOf(r) != id {
			t.Errorf("IDOf(%T) = %v", r, IDOf(r))
		}
	}
	if optional("") != nil || *optional("x") != "x" {
		t.Errorf("optional: %v %v", optional(""), optional("x"))
	}
}
