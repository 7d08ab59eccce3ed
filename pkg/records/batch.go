package records

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

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
// request would run (its own transaction, the same code),
// BatchParallelism at once; one failing never stops another. The outcomes
// are in the order of the operations. No operations (nil) or too many is a
// *ValidationError naming operations, and nothing is done.
func (s *Service) Batch(ctx context.Context, orgID uuid.UUID, operations []json.RawMessage) ([]Outcome, error) {
	if operations == nil {
		return nil, invalid("operations", "The operations field is required.")
	}
	if n := len(operations); n < 1 || n > MaxBatchOperations {
		return nil, invalid("operations", fmt.Sprintf("The operations field must have between 1 and %d operations; it has %d.", MaxBatchOperations, n))
	}
	out := make([]Outcome, len(operations))
	var g errgroup.Group
	g.SetLimit(BatchParallelism)
	for i, raw := range operations {
		g.Go(func() error {
			out[i] = s.operation(ctx, orgID, raw)
			return nil // an operation's error is its outcome, never the batch's
		})
	}
	_ = g.Wait()
	return out, nil
}

func (s *Service) operation(ctx context.Context, orgID uuid.UUID, raw json.RawMessage) (o Outcome) {
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
		return o
	}
	op := o.Op
	if _, ok := readOnly[op.Resource]; !ok {
		o.Err = invalid("resource", "The selected resource is invalid; it must be customers, locations or debt_accounts.")
		return o
	}
	var id uuid.UUID
	switch op.Operation {
	case "patch", "delete":
		if op.ID == "" {
			o.Err = invalid("id", "The id field is required for a "+op.Operation+".")
			return o
		}
		var err error
		if id, err = uuid.Parse(op.ID); err != nil {
			o.Err = ErrNotFound // as the single request with that path
			return o
		}
		if op.Object != nil {
			o.Err = invalid("object", "The object field is only allowed on create.")
			return o
		}
	case "create":
		if op.ID != "" || op.IfMatch != "" || op.PatchDirectives != nil {
			o.Err = invalid("id", "The id, if_match and patch_directives fields are not allowed on create.")
			return o
		}
	default:
		o.Err = invalid("operation", "The selected operation is invalid; it must be patch, delete or create.")
		return o
	}
	switch op.Operation {
	case "patch":
		if len(op.PatchDirectives) == 0 || string(op.PatchDirectives) == "null" {
			o.Err = invalid("patch_directives", "The patch directives field is required for a patch.")
			return o
		}
		o.Record, _, o.Err = s.Patch(ctx, orgID, op.Resource, id, op.IfMatch, JSONPatch, op.PatchDirectives)
	case "delete":
		if op.PatchDirectives != nil {
			o.Err = invalid("patch_directives", "The patch directives field is only allowed on patch.")
			return o
		}
		o.Err = s.Delete(ctx, orgID, op.Resource, id, op.IfMatch, false)
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
