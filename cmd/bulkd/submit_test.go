package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// post submits body with an Idempotency-Key ("" for none).
func (s *service) post(key, idempotencyKey string, body []byte) response {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.base+"/api/v1/bulk", bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		s.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b.Bytes()}
}

func TestDuplicateSubmits(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")
	body := testenv.SeedExample(t)

	t.Run("without a key, each submission is a bulk", func(t *testing.T) {
		a, b := s.post(key, "", body), s.post(key, "", body)
		if a.status != http.StatusAccepted || b.status != http.StatusAccepted || a.json(t)["data"].(map[string]any)["bulk_id"] == b.json(t)["data"].(map[string]any)["bulk_id"] {
			t.Errorf("two submissions without a key: %d %s, %d %s; want two bulks", a.status, a.body, b.status, b.body)
		}
	})

	first := s.post(key, "order-42", body)
	if first.status != http.StatusAccepted || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first submission with a key: %d %s (replayed %q)", first.status, first.body, first.header.Get("Idempotent-Replayed"))
	}
	id := first.json(t)["data"].(map[string]any)["bulk_id"].(string)
	s.waitCompleted(key, id)

	t.Run("a retry with the key answers as the first time", func(t *testing.T) {
		retry := s.post(key, "order-42", body)
		if retry.status != http.StatusAccepted || !bytes.Equal(retry.body, first.body) ||
			retry.header.Get("Location") != first.header.Get("Location") || retry.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry: %d %s (Location %q, replayed %q); want the first answer %s",
				retry.status, retry.body, retry.header.Get("Location"), retry.header.Get("Idempotent-Replayed"), first.body)
		}
		if n := s.db.Count(t, `SELECT count(*) FROM bulks WHERE id <> $1`, id); n != 2 {
			t.Errorf("%d other bulks, want only the 2 without a key", n)
		}
	})

	t.Run("the same key with another body is refused", func(t *testing.T) {
		other := s.post(key, "order-42", bytes.Replace(body, []byte(`"name"`), []byte(` "name"`), 1))
		if other.status != http.StatusUnprocessableEntity || len(other.json(t)["errors"].(map[string]any)["Idempotency-Key"].([]any)) == 0 {
			t.Errorf("same key, other body: %d %s; want 422 naming Idempotency-Key", other.status, other.body)
		}
	})

	t.Run("keys belong to an organization", func(t *testing.T) {
		_, otherKey := s.newOrg("Other", "ops@other.example")
		theirs := s.post(otherKey, "order-42", body)
		if theirs.status != http.StatusAccepted || theirs.header.Get("Idempotent-Replayed") != "" ||
			theirs.json(t)["data"].(map[string]any)["bulk_id"] == id {
			t.Errorf("another organization's equal key: %d %s; want a bulk of its own", theirs.status, theirs.body)
		}
	})

	t.Run("a malformed key is a 400 naming the header", func(t *testing.T) {
		for _, bad := range []string{strings.Repeat("k", 256), "two words", "naïve"} {
			r := s.post(key, bad, body)
			if r.status != http.StatusBadRequest || r.json(t)["errors"].(map[string]any)["Idempotency-Key"] == nil {
				t.Errorf("Idempotency-Key %.20q: %d %s", bad, r.status, r.body)
			}
		}
	})

	// The retried bulk was imported and emailed once.
	s.smtp.WaitForMessages(t, 4, 30*time.Second)
	s.waitAllNotified()
	if n := len(s.smtp.Messages()); n != 4 {
		t.Errorf("%d emails for 4 bulks", n)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM customers`); n != 2 {
		t.Errorf("%d customers: the seed's for each organization, want 2", n)
	}
}

func TestRateLimitPerAPIKey(t *testing.T) {
	t.Parallel()
	s := startService(t, "RATE_LIMIT=1", "RATE_LIMIT_BURST=3")
	_, key := s.newOrg("Acme", "ops@acme.example")
	_, otherKey := s.newOrg("Other", "ops@other.example")
	missing := "/api/v1/bulk/0190a1b2-0000-7000-8000-000000000000"

	var statuses []int
	for range 4 {
		statuses = append(statuses, s.do(http.MethodGet, missing, key, nil).status)
	}
	if diff := cmp.Diff([]int{404, 404, 404, 429}, statuses); diff != "" {
		t.Errorf("4 requests at once with a burst of 3 (-want +got):\n%s", diff)
	}
	r := s.do(http.MethodGet, missing, key, nil)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" || !strings.Contains(r.json(t)["message"].(string), "Too many requests") {
		t.Errorf("over the limit: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	if r := s.do(http.MethodGet, missing, otherKey, nil); r.status != http.StatusNotFound {
		t.Errorf("another key is limited too: %d", r.status)
	}
	if r := s.do(http.MethodGet, "/healthz", "", nil); r.status != http.StatusOK {
		t.Errorf("probes are limited: %d", r.status)
	}
}

func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	// A timeout no query can meet stands for a database that hangs.
	s := startService(t, "REQUEST_TIMEOUT=1ns")
	_, key := s.newOrg("Acme", "ops@acme.example")
	r := s.post(key, "", testenv.SeedExample(t))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" ||
		!strings.Contains(r.json(t)["message"].(string), "did not finish within 1ns") {
		t.Errorf("request over REQUEST_TIMEOUT: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	if n := s.db.Count(t, `SELECT count(*) FROM bulks`); n != 0 {
		t.Errorf("%d bulks stored by a request that timed out", n)
	}
	if r := s.do(http.MethodGet, "/healthz", "", nil); r.status != http.StatusOK {
		t.Errorf("/healthz is not bound by REQUEST_TIMEOUT: %d", r.status)
	}
}
