package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOperatorCommands runs the operator's commands as the README gives
// them: organizations are listed and changed, and an organization's keys
// are listed with when each was made, last used and revoked, never the key.
func TestOperatorCommands(t *testing.T) {
	t.Parallel()
	s := startService(t)
	orgID, used := s.newOrg(t, "Acme", "ops@acme.example")
	unused := s.cli(t, "apikey", "create", "--org", orgID)
	revoked := s.cli(t, "apikey", "create", "--org", orgID)
	s.cli(t, "apikey", "revoke", "--prefix", revoked[:12])
	if r := s.request(t, http.MethodGet, "/api/v1/bulk", nil, bearer(used)); r.status != http.StatusOK {
		t.Fatalf("GET /api/v1/bulk: %d %s", r.status, r.body)
	}

	table := s.cli(t, "org", "list")
	lines := strings.Split(table, "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], orgID) ||
		!strings.Contains(lines[1], "Acme") || !strings.Contains(lines[1], "ops@acme.example") {
		t.Errorf("org list:\n%s", table)
	}
	var orgs []struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		NotifyEmail string `json:"notify_email"`
		ActiveKeys  int    `json:"active_keys"`
		Bulks       int    `json:"bulks"`
	}
	if err := json.Unmarshal([]byte(s.cli(t, "org", "list", "--json")), &orgs); err != nil {
		t.Fatal(err)
	}
	if len(orgs) != 1 || orgs[0].ID != orgID || orgs[0].ActiveKeys != 2 || orgs[0].Bulks != 0 {
		t.Errorf("org list --json: %+v", orgs)
	}

	if out := s.cli(t, "org", "update", "--org", orgID, "--notify-email", "billing@acme.example"); !strings.Contains(out, "billing@acme.example") {
		t.Errorf("org update: %s", out)
	}
	if out := s.cli(t, "org", "update", "--org", orgID, "--name", "Acme Collections", "--json"); !strings.Contains(out, `"name": "Acme Collections"`) ||
		!strings.Contains(out, `"notify_email": "billing@acme.example"`) {
		t.Errorf("org update --name: %s", out)
	}
	for _, args := range [][]string{
		{"org", "update", "--org", orgID},
		{"org", "update", "--org", orgID, "--notify-email", "not an address"},
		{"org", "update", "--org", orgID, "--name", " "},
		{"org", "update", "--org", "01a23d08-d6fa-78cd-b33c-6c9dc9e34659", "--name", "x"},
		{"apikey", "list", "--org", "x"},
	} {
		if err := run(context.Background(), args, s.getenv, io.Discard, io.Discard); err == nil {
			t.Errorf("bulkd %s succeeded", strings.Join(args, " "))
		}
	}

	out := s.cli(t, "apikey", "list", "--org", orgID, "--json")
	for _, key := range []string{used, unused, revoked} {
		if strings.Contains(out, key[12:]) {
			t.Errorf("apikey list shows a key:\n%s", out)
		}
	}
	var keys []struct {
		Prefix     string     `json:"prefix"`
		CreatedAt  time.Time  `json:"created_at"`
		LastUsedAt *time.Time `json:"last_used_at"`
		RevokedAt  *time.Time `json:"revoked_at"`
	}
	if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 3 {
		t.Fatalf("apikey list --json: %v\n%s", err, out)
	}
	byPrefix := map[string]int{}
	for i, k := range keys {
		byPrefix[k.Prefix] = i
	}
	if k := keys[byPrefix[used[:12]]]; k.LastUsedAt == nil || k.RevokedAt != nil {
		t.Errorf("the key that was used: %+v", k)
	}
	if k := keys[byPrefix[unused[:12]]]; k.LastUsedAt != nil || k.RevokedAt != nil {
		t.Errorf("the key never used: %+v", k)
	}
	if k := keys[byPrefix[revoked[:12]]]; k.RevokedAt == nil {
		t.Errorf("the revoked key: %+v", k)
	}
	if table := s.cli(t, "apikey", "list", "--org", orgID); !strings.HasPrefix(table, "PREFIX") || strings.Count(table, "\n") != 3 {
		t.Errorf("apikey list:\n%s", table)
	}
}

// TestKeyUseIsRecordedAtMostOnceAMinute: many requests with one key write
// its last_used_at once.
func TestKeyUseIsRecordedAtMostOnceAMinute(t *testing.T) {
	t.Parallel()
	s := startService(t, "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE key_writes (at timestamptz DEFAULT now())`,
		`CREATE FUNCTION count_key_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO key_writes DEFAULT VALUES; RETURN NEW; END $$`,
		`CREATE TRIGGER count_key_writes AFTER UPDATE ON api_keys FOR EACH ROW EXECUTE FUNCTION count_key_write()`,
	} {
		if _, err := s.db.Conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		if r := s.request(t, http.MethodGet, "/api/v1/bulk", nil, bearer(key)); r.status != http.StatusOK {
			t.Fatalf("GET /api/v1/bulk: %d %s", r.status, r.body)
		}
	}
	if n := s.db.Count(t, `SELECT count(*) FROM key_writes`); n != 1 {
		t.Errorf("50 requests wrote the key %d times, want once", n)
	}
}
