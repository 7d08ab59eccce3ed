package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/testenv"
)

func TestDuplicateSubmits(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	body := testenv.SeedExample(t)

	t.Run("without a key, each submission is a bulk", func(t *testing.T) {
		a := s.request(t, http.MethodPost, "/api/v1/bulk", body, bearer(key))
		b := s.request(t, http.MethodPost, "/api/v1/bulk", body, bearer(key))
		if a.status != http.StatusAccepted || b.status != http.StatusAccepted || a.json(t)["data"].(map[string]any)["bulk_id"] == b.json(t)["data"].(map[string]any)["bulk_id"] {
			t.Errorf("two submissions without a key: %d %s, %d %s; want two bulks", a.status, a.body, b.status, b.body)
		}
	})

	first := s.request(t, http.MethodPost, "/api/v1/bulk", body, bearer(key), "Idempotency-Key: order-42")
	if first.status != http.StatusAccepted || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first submission with a key: %d %s (replayed %q)", first.status, first.body, first.header.Get("Idempotent-Replayed"))
	}
	id := first.json(t)["data"].(map[string]any)["bulk_id"].(string)
	s.waitCompleted(t, key, id)

	t.Run("a retry with the key answers as the first time", func(t *testing.T) {
		retry := s.request(t, http.MethodPost, "/api/v1/bulk", body, bearer(key), "Idempotency-Key: order-42")
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
		changed := bytes.Replace(body, []byte(`"name"`), []byte(` "name"`), 1)
		other := s.request(t, http.MethodPost, "/api/v1/bulk", changed, bearer(key), "Idempotency-Key: order-42")
		if other.status != http.StatusUnprocessableEntity || len(other.json(t)["errors"].(map[string]any)["Idempotency-Key"].([]any)) == 0 {
			t.Errorf("same key, other body: %d %s; want 422 naming Idempotency-Key", other.status, other.body)
		}
	})

	t.Run("keys belong to an organization", func(t *testing.T) {
		_, otherKey := s.newOrg(t, "Other", "ops@other.example")
		theirs := s.request(t, http.MethodPost, "/api/v1/bulk", body, bearer(otherKey), "Idempotency-Key: order-42")
		if theirs.status != http.StatusAccepted || theirs.header.Get("Idempotent-Replayed") != "" ||
			theirs.json(t)["data"].(map[string]any)["bulk_id"] == id {
			t.Errorf("another organization's equal key: %d %s; want a bulk of its own", theirs.status, theirs.body)
		}
	})

	t.Run("a malformed key is a 400 naming the header", func(t *testing.T) {
		for _, bad := range []string{strings.Repeat("k", 256), "two words", "naïve"} {
			r := s.request(t, http.MethodPost, "/api/v1/bulk", body, bearer(key), "Idempotency-Key: "+bad)
			if r.status != http.StatusBadRequest || r.json(t)["errors"].(map[string]any)["Idempotency-Key"] == nil {
				t.Errorf("Idempotency-Key %.20q: %d %s", bad, r.status, r.body)
			}
		}
	})

	// The retried bulk was imported and emailed once.
	s.smtp.WaitForMessages(t, 4, 30*time.Second)
	s.waitAllNotified(t)
	if n := len(s.smtp.Messages()); n != 4 {
		t.Errorf("%d emails for 4 bulks", n)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM customers`); n != 2 {
		t.Errorf("%d customers: the seed's for each organization, want 2", n)
	}
}

func TestRequestErrorsStoreNothing(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	tooMany := "[" + strings.Repeat(`{},`, 1000) + "{}]"
	tooLarge := `[{"customer":{"name":"` + strings.Repeat("x", 1<<20) + `"}}]`
	tests := []struct {
		name   string
		key    string
		body   string
		status int
		field  string
	}{
		{"no key", "", `[{}]`, 401, "authorization"},
		{"unknown key", "bk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", `[{}]`, 401, "authorization"},
		{"not JSON", key, `customer=1`, 400, "body"},
		{"truncated JSON", key, `[{"customer":`, 400, "body"},
		{"object instead of array", key, `{"customer":{}}`, 400, "body"},
		{"empty array", key, `[]`, 422, "body"},
		{"over 1000 rows", key, tooMany, 422, "body"},
		{"body over the limit", key, tooLarge, 413, "body"},
		{"invalid UTF-8", key, "[{\"customer\":{\"name\":\"\xff\"}}]", 400, "body"},
		{"raw NUL byte in a string", key, "[{\"customer\":{\"name\":\"a\x00b\"}}]", 400, "body"},
		{"nested 100 000 deep", key, "[" + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + "]", 400, "body"},
		{"two arrays", key, `[{}][{}]`, 400, "body"},
		{"a number", key, `1e309`, 400, "body"},
		{"101 debt accounts", key, `[{},{"debt_accounts":[` + strings.Repeat(`{},`, 100) + `{}]}]`, 422, "#/1/debt_accounts"},
		{"101 parent debt accounts", key, `[{"Parent_Debt_Accounts":[` + strings.Repeat(`{},`, 100) + `{}]}]`, 422, "#/0/parent_debt_accounts"},
		{"a row nested 33 deep", key, "[" + strings.Repeat("[", 33) + strings.Repeat("]", 33) + "]", 422, "#/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.request(t, http.MethodPost, "/api/v1/bulk", tt.body, bearer(tt.key), jsonBody)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			var e struct {
				Message string              `json:"message"`
				Errors  map[string][]string `json:"errors"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil || e.Message == "" || len(e.Errors[tt.field]) == 0 {
				t.Errorf("want {message, errors.%s}, got %s", tt.field, r.body)
			}
		})
	}
	if n := s.db.Count(t, `SELECT count(*) FROM bulks`) + s.db.Count(t, `SELECT count(*) FROM bulk_rows`); n != 0 {
		t.Errorf("rejected requests stored %d records", n)
	}
}

func TestSubmitSucceedsWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: Redis is down for this API process.
	s := startMode(t, "api", "REDIS_URL=redis://127.0.0.1:1/0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")

	r := s.request(t, http.MethodGet, "/readyz", nil)
	var ready struct {
		Errors map[string][]string `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &ready); err != nil || r.status != http.StatusServiceUnavailable ||
		ready.Errors["redis"] == nil || ready.Errors["postgres"] != nil {
		t.Errorf("/readyz with Redis down: %d %s", r.status, r.body)
	}
	// The bulk is durable in Postgres before the answer; it stays pending
	// for a worker's reconciler to queue once Redis is back.
	id := s.submit(t, key, testenv.SeedExample(t))
	if n := s.db.Count(t, `SELECT count(*) FROM bulks WHERE id = $1 AND status = 'pending'`, id); n != 1 {
		t.Errorf("bulk not stored as pending")
	}
	if n := s.db.Count(t, `SELECT count(*) FROM bulk_rows WHERE bulk_id = $1`, id); n != 1 {
		t.Errorf("rows not stored")
	}
}

// With an Idempotency-Key, a gzip retry of a plain submission is the same
// submission: the key's hash is of the decoded body.
func TestIdempotencyKeyHashesTheDecodedBody(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	seed := testenv.SeedExample(t)
	first := s.request(t, http.MethodPost, "/api/v1/bulk", seed, bearer(key), "Idempotency-Key: k1")
	retry := s.request(t, http.MethodPost, "/api/v1/bulk", gzipped(t, seed), bearer(key), "Idempotency-Key: k1", "Content-Encoding: gzip")
	if first.status != 202 || retry.status != 202 || retry.header.Get("Idempotent-Replayed") != "true" ||
		!bytes.Equal(first.body, retry.body) {
		t.Errorf("first %d %s, gzip retry %d %s (replayed %q)", first.status, first.body, retry.status, retry.body,
			retry.header.Get("Idempotent-Replayed"))
	}
}
