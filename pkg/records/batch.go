package records

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/jsonscan"
)

// Batch limits.
const (
	MaxBatchOperations = 100 // operations in one batch
	BatchParallelism   = 8   // operations of one batch running at once
)

// Operation is one operation of a batch, as the client sent it.
type Operation struct {
	Operation       string          `json:"operation"`
	Resource        string          `json:"resource"`
	ID              string          `json:"id"`
	PatchDirectives json.RawMessage `json:"patch_directives"`
	IfMatch         string          `json:"if_match"`
	Object          json.RawMessage `json:"object"`
}

// MalformedError is an operation that is not an object of the batch's
// shape at all (a single request would be a 400).
type MalformedError struct{ Message string }

func (e *MalformedError) Error() string { return e.Message }

// Outcome is what one operation of a batch did: the record it patched or
// created (nil for a delete), or the error that stopped it, as the single
// request's. Op is the operation as far as it could be read.
type Outcome struct {
	Op      Operation
	Record  Record
	Created bool
	Err     error
}

// BatchAnswer is the answer to POST /api/v1/batch: how many operations
// succeeded and failed, and each one's result, in the order of the
// operations.
type BatchAnswer struct {
	SuccessCount int           `json:"success_count"`
	ErrorCount   int           `json:"error_count"`
	Results      []BatchResult `json:"results"`
}

// BatchResult is what one operation did, as its single request would have
// answered: the status, and the record (of a patch or a create) or the
// error's message and fields.
type BatchResult struct {
	Operation    string              `json:"operation"`
	Resource     string              `json:"resource"`
	ID           string              `json:"id,omitempty"`
	Outcome      string              `json:"outcome"` // success or error
	Status       int                 `json:"status"`
	Object       Record              `json:"object,omitempty"`
	ErrorMessage string              `json:"error_message,omitempty"`
	Errors       map[string][]string `json:"errors,omitempty"`
}

// Batch runs 1 to MaxBatchOperations operations, each as its single
// request would run (its own transaction, the same code); one failing never
// stops another. Operations that name the same record (see names) run one
// after another in the order of the list, so that a create that names an
// external id an earlier operation creates finds it; the others run
// BatchParallelism at once. The outcomes are in the order of the
// operations. No operations (nil) or too many is a *ValidationError naming
// operations, and nothing is done.
func (s *Service) Batch(ctx context.Context, orgID uuid.UUID, operations []json.RawMessage) ([]Outcome, error) {
	if operations == nil {
		return nil, invalid("operations", "The operations field is required.")
	}
	if n := len(operations); n < 1 || n > MaxBatchOperations {
		return nil, invalid("operations", fmt.Sprintf("The operations field must have between 1 and %d operations; it has %d.", MaxBatchOperations, n))
	}
	out := make([]Outcome, len(operations))
	ops := make([]operation, len(operations))
	for i, raw := range operations {
		ops[i], out[i] = decodeOperation(raw)
	}
	after := order(ops, out)
	done := make([]chan struct{}, len(ops))
	slots := make(chan struct{}, BatchParallelism)
	var wg sync.WaitGroup
	for i := range ops {
		done[i] = make(chan struct{})
		wg.Go(func() {
			defer close(done[i])
			// Each waits for those before it that name what it names, and
			// takes a slot only then: a waiting operation holds none, and
			// the first unfinished one always runs.
			for _, j := range after[i] {
				<-done[j]
			}
			if out[i].Err != nil {
				return // it did not decode: nothing to run
			}
			slots <- struct{}{}
			defer func() { <-slots }()
			out[i] = s.run(ctx, orgID, ops[i], out[i])
		})
	}
	wg.Wait()
	return out, nil
}

// operation is a decoded operation of a batch, ready to run.
type operation struct {
	Operation
	id uuid.UUID // of a patch or delete
}

// kind is what the operation does: patch, delete or create.
func (op operation) kind() string { return op.Operation.Operation }

// order tells, for each operation, the earlier ones it must wait for: the
// last before it that named each record it names. Chained so, operations
// that name one record run in the order of the list.
func order(ops []operation, decoded []Outcome) [][]int {
	after := make([][]int, len(ops))
	last := map[string]int{}
	for i, op := range ops {
		if decoded[i].Err != nil {
			continue
		}
		for _, name := range op.names() {
			if j, ok := last[name]; ok && !slices.Contains(after[i], j) {
				after[i] = append(after[i], j)
			}
			last[name] = i
		}
	}
	return after
}

// names are the records an operation names, each as "<resource> id <id>"
// or "<resource> external_id <external id>": the record a patch or delete
// applies to, the external id a create gives its record, the records a
// create links its record to (location, customer, parent), and the ids and
// external ids a patch sets. A record created in the batch can be named
// only by its external id (its id is not known before), an existing one by
// either; a patch or delete by id and a create by external id of the same
// record are not known to be one.
func (op operation) names() []string {
	var out []string
	add := func(resource, by string, raw json.RawMessage) {
		if v, ok := stringOrNull(raw); ok && v != "" {
			if by == "id" {
				id, err := uuid.Parse(v)
				if err != nil {
					return // names nothing: the operation fails on it
				}
				v = id.String()
			}
			out = append(out, resource+" "+by+" "+v)
		}
	}
	links := func(get func(string) (json.RawMessage, bool)) {
		for _, l := range []struct{ field, resource, by string }{
			{"location_id", Locations, "id"}, {"location_external_id", Locations, "external_id"},
			{"customer_id", Customers, "id"}, {"customer_external_id", Customers, "external_id"},
			{"parent_id", DebtAccounts, "id"}, {"parent_external_id", DebtAccounts, "external_id"},
		} {
			if raw, ok := get(l.field); ok {
				add(l.resource, l.by, raw)
			}
		}
	}
	switch op.kind() {
	case "patch", "delete":
		out = append(out, op.Resource+" id "+op.id.String())
		var directives []struct {
			Op    string          `json:"op"`
			Path  string          `json:"path"`
			Value json.RawMessage `json:"value"`
		}
		_ = json.Unmarshal(op.PatchDirectives, &directives) // one that does not decode fails when run
		set := func(field string) (json.RawMessage, bool) {
			for _, d := range directives {
				if (d.Op == "add" || d.Op == "replace") && d.Path == "/"+field {
					return d.Value, true
				}
			}
			return nil, false
		}
		if raw, ok := set("external_id"); ok {
			add(op.Resource, "external_id", raw)
		}
		links(set)
	case "create":
		var f fields
		_ = json.Unmarshal(op.Object, &f) // one that does not decode fails when run
		add(op.Resource, "external_id", f["external_id"])
		links(func(field string) (json.RawMessage, bool) { raw, ok := f[field]; return raw, ok })
	}
	return out
}

// decodeOperation reads one operation of a batch: the operation to run, or
// an outcome with the error that makes it not one (and what could be read
// of it, to name it in the result).
func decodeOperation(raw json.RawMessage) (op operation, o Outcome) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o.Op); err != nil || jsonscan.Kind(raw) != '{' {
		// Keep what can be read of it, to name it in the result.
		var partial map[string]any
		if json.Unmarshal(raw, &partial) == nil {
			o.Op.Operation, _ = partial["operation"].(string)
			o.Op.Resource, _ = partial["resource"].(string)
			o.Op.ID, _ = partial["id"].(string)
		}
		o.Err = malformed(raw, err)
		return op, o
	}
	op.Operation = o.Op
	if _, ok := readOnly[op.Resource]; !ok {
		o.Err = invalid("resource", "The selected resource is invalid; it must be customers, locations or debt_accounts.")
		return op, o
	}
	switch op.kind() {
	case "patch", "delete":
		if op.ID == "" {
			o.Err = invalid("id", "The id field is required for a "+op.kind()+".")
			return op, o
		}
		var err error
		if op.id, err = uuid.Parse(op.ID); err != nil {
			o.Err = ErrNotFound // as the single request with that path
			return op, o
		}
		if op.Object != nil {
			o.Err = invalid("object", "The object field is only allowed on create.")
			return op, o
		}
	case "create":
		if op.ID != "" || op.IfMatch != "" || op.PatchDirectives != nil {
			o.Err = invalid("id", "The id, if_match and patch_directives fields are not allowed on create.")
			return op, o
		}
	default:
		o.Err = invalid("operation", "The selected operation is invalid; it must be patch, delete or create.")
		return op, o
	}
	switch {
	case op.kind() == "patch" && (len(op.PatchDirectives) == 0 || string(op.PatchDirectives) == "null"):
		o.Err = invalid("patch_directives", "The patch directives field is required for a patch.")
	case op.kind() == "delete" && op.PatchDirectives != nil:
		o.Err = invalid("patch_directives", "The patch directives field is only allowed on patch.")
	}
	return op, o
}

// run runs one decoded operation as its single request would, and returns
// o with what it did.
func (s *Service) run(ctx context.Context, orgID uuid.UUID, op operation, o Outcome) Outcome {
	switch op.kind() {
	case "patch":
		o.Record, _, o.Err = s.Patch(ctx, orgID, op.Resource, op.id, op.IfMatch, JSONPatch, op.PatchDirectives)
	case "delete":
		o.Err = s.Delete(ctx, orgID, op.Resource, op.id, op.IfMatch, false)
	case "create":
		o.Record, o.Err = s.Create(ctx, orgID, op.Resource, op.Object)
		o.Created = o.Err == nil
	}
	return o
}

// malformed is the error of an operation that does not decode: a
// member of the wrong type or unknown is a 422 naming it, anything but an
// object a 400.
func malformed(raw json.RawMessage, err error) error {
	var typ *json.UnmarshalTypeError
	switch {
	case jsonscan.Kind(raw) != '{' || err == nil:
		return &MalformedError{Message: "The operation must be an object with operation and resource."}
	case errors.As(err, &typ) && typ.Field != "":
		return invalid(typ.Field, "The "+bulk.Label(typ.Field)+" field must be "+kindOf(typ.Field)+".")
	case strings.HasPrefix(err.Error(), `json: unknown field "`):
		f := strings.TrimSuffix(strings.TrimPrefix(err.Error(), `json: unknown field "`), `"`)
		return unknownField(f, "operation", "#")
	}
	return &MalformedError{Message: "The operation must be an object with operation and resource."}
}

func kindOf(field string) string {
	switch field {
	case "patch_directives":
		return "a list of JSON Patch operations"
	case "object":
		return "an object"
	}
	return "a string"
}
