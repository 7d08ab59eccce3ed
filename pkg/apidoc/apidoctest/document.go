package apidoctest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/paths"
	"github.com/pb33f/libopenapi-validator/schema_validation"
)

// Route is one documented operation: its method (upper-case), its path as
// the document writes it (/api/v1/bulk/{id}) and its operationId.
type Route struct {
	Method, Path, OperationID string
}

// Routes lists every operation of the document's paths.
func Routes(t testing.TB) []Route {
	t.Helper()
	d, err := loadDocument()
	if err != nil {
		t.Fatalf("apidoctest: %v", err)
	}
	var out []Route
	for path, item := range d.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			out = append(out, Route{Method: strings.ToUpper(method), Path: path, OperationID: op.OperationId})
		}
	}
	return out
}

// OperationID is the operationId of the documented operation req is for,
// or "" when the document has none.
func OperationID(t testing.TB, req *http.Request) string {
	t.Helper()
	d, err := loadDocument()
	if err != nil {
		t.Fatalf("apidoctest: %v", err)
	}
	item, errs, _ := paths.FindPath(req, d.model, nil)
	if len(errs) > 0 {
		return ""
	}
	if op := operation(item, req.Method); op != nil {
		return op.OperationId
	}
	return ""
}

// CheckWebhook reports with t.Errorf where a delivery bulkd sent to a
// webhook endpoint, its headers and body, differs from the document's
// webhooks entry name.
func CheckWebhook(t testing.TB, name string, header http.Header, body []byte) {
	t.Helper()
	d, err := loadDocument()
	if err != nil {
		t.Fatalf("apidoctest: %v", err)
	}
	item := d.model.Webhooks.GetOrZero(name)
	if item == nil || item.Post == nil {
		t.Fatalf("apidoctest: the document has no webhook %q with a POST", name)
	}
	op := item.Post
	for _, p := range op.Parameters {
		if p.In == "header" && p.Required != nil && *p.Required && header.Get(p.Name) == "" {
			t.Errorf("apidoctest: webhook %s: the delivery has no %s header", name, p.Name)
		}
	}
	for h := range header {
		if !documentedHeader(op.Parameters, h) && !ignoredHeader(h) {
			t.Errorf("apidoctest: webhook %s: the delivery's %s header is not in the document", name, h)
		}
	}
	mt := op.RequestBody.Content.GetOrZero("application/json")
	if mt == nil || mt.Schema == nil {
		t.Fatalf("apidoctest: webhook %s has no application/json body", name)
	}
	v := schema_validation.NewSchemaValidator(config.WithFormatAssertions())
	if ok, errs := v.ValidateSchemaBytesWithVersion(mt.Schema.Schema(), body, 3.1); !ok {
		t.Errorf("apidoctest: webhook %s: the delivery's body does not match the document:%s\n%s", name, describe(errs), body)
	}
}
