package bulksvc_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/store"
)

// Two submissions are the same request when their options and bodies are:
// their fingerprints are equal, and differ when either differs. Without a
// key there is no fingerprint.
func TestSubmissionFingerprint(t *testing.T) {
	t.Parallel()
	org := uuid.New()
	body := `[{"customer": {"external_id": "c1"}}]`
	read := func(opts bulk.Options, key, body string) bulksvc.Submission {
		t.Helper()
		sub, err := bulksvc.ReadSubmission(org, opts, key, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return sub
	}
	first := read(bulk.Options{}, "k", body)
	if first.IdempotencyKey == nil || first.IdempotencyKey.Key != "k" || len(first.Rows) != 1 || first.OrganizationID != org {
		t.Fatalf("submission: %+v", first)
	}
	same := read(bulk.Options{Mode: bulk.ModeCreate}, "k", body) // the default mode, named
	if !bytes.Equal(first.IdempotencyKey.RequestHash, same.IdempotencyKey.RequestHash) {
		t.Errorf("the same request has another fingerprint")
	}
	for name, other := range map[string]bulksvc.Submission{
		"other options": read(bulk.Options{Atomic: true}, "k", body),
		"other body":    read(bulk.Options{}, "k", `[{"customer": {"external_id": "c2"}}]`),
		"other spacing": read(bulk.Options{}, "k", `[ {"customer": {"external_id": "c1"}}]`),
	} {
		if bytes.Equal(first.IdempotencyKey.RequestHash, other.IdempotencyKey.RequestHash) {
			t.Errorf("%s: the same fingerprint", name)
		}
	}
	if sub := read(bulk.Options{}, "", body); sub.IdempotencyKey != nil {
		t.Errorf("no key, yet %+v", sub.IdempotencyKey)
	}
	if _, err := bulksvc.ReadSubmission(org, bulk.Options{}, "k", strings.NewReader(`{}`)); err != bulk.ErrNotArray {
		t.Errorf("a body that is no array: %v", err)
	}
}

// A delivery's status is where it stands; a view shows deliveries only
// when asked.
func TestWebhookView(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for want, d := range map[string]store.Delivery{
		bulksvc.DeliveryPending:   {},
		bulksvc.DeliveryDelivered: {DeliveredAt: &now},
		bulksvc.DeliveryAbandoned: {AbandonedAt: &now},
	} {
		if got := bulksvc.DeliveryStatus(d); got != want {
			t.Errorf("DeliveryStatus(%+v) = %s, want %s", d, got, want)
		}
	}
	e := bulksvc.Endpoint{Webhook: store.Webhook{URL: "https://h.example"}, Deliveries: []store.DeliveryWithAttempts{{
		Delivery: store.Delivery{DeliveredAt: &now},
		Attempts: []store.Attempt{{Number: 1, StatusCode: 500, Error: "HTTP 500"}, {Number: 2, StatusCode: 200}},
	}}}
	if v := e.View(false); v.Deliveries != nil {
		t.Errorf("deliveries not asked for: %+v", v.Deliveries)
	}
	b, _ := json.Marshal(e.View(true))
	var v struct {
		Deliveries []struct {
			Status   string
			Attempts []struct {
				StatusCode *int    `json:"status_code"`
				Error      *string `json:"error"`
			}
		}
	}
	if err := json.Unmarshal(b, &v); err != nil || len(v.Deliveries) != 1 || v.Deliveries[0].Status != "delivered" ||
		*v.Deliveries[0].Attempts[0].Error != "HTTP 500" || v.Deliveries[0].Attempts[1].Error != nil {
		t.Errorf("view: %v %s", err, b)
	}
	if b, _ := json.Marshal(bulksvc.Endpoint{}.View(true)); !bytes.Contains(b, []byte(`"deliveries":[]`)) {
		t.Errorf("no deliveries: %s", b)
	}
}
