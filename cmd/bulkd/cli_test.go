package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/testenv"
)

func TestCommandLineErrors(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": testenv.DatabaseURL(t)}
	for _, args := range [][]string{
		{"org", "create", "--name", "Acme"},
		{"org", "create", "--name", "Acme", "--notify-email", "not an address"},
		{"apikey", "create", "--org", "nope"},
		{"apikey", "create", "--org", uuid.NewString()},
		{"apikey", "revoke", "--prefix", "bk_unknown00"},
		{"frobnicate"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), args, func(k string) string { return env[k] }, &out, io.Discard)
		if err == nil || out.Len() != 0 {
			t.Errorf("bulkd %s: err %v, printed %q; want an error and nothing printed", strings.Join(args, " "), err, out.String())
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), nil, func(string) string { return "" }, &out, io.Discard); err != nil || !strings.Contains(out.String(), "usage: bulkd") {
		t.Errorf("bulkd without arguments: %v %q", err, out.String())
	}
	if err := run(context.Background(), []string{"serve"}, func(k string) string {
		return map[string]string{"WORKER_CONCURRENCY": "many"}[k]
	}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "WORKER_CONCURRENCY") {
		t.Errorf("a bad variable must stop start-up naming it: %v", err)
	}
	// The mail settings stop every mode, api included, though only a worker sends.
	for _, bad := range []map[string]string{
		{"MAIL_FROM": "not an address"},
		{"SMTP_PASSWORD": "secret", "SMTP_HOST": "smtp.example.com"},
	} {
		for _, mode := range []string{"api", "worker", "serve"} {
			err := run(context.Background(), []string{mode}, func(k string) string { return bad[k] }, io.Discard, io.Discard)
			for name := range bad {
				if name == "SMTP_HOST" {
					continue
				}
				if err == nil || !strings.Contains(err.Error(), name) {
					t.Errorf("bulkd %s with %v: %v, want an error naming %s", mode, bad, err, name)
				}
			}
		}
	}

	// apikey revoke takes the exact prefix or the whole key; a longer prefix
	// whose first 12 characters are right, or a whole key that is wrong,
	// revokes nothing.
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), args, func(k string) string { return env[k] }, &out, io.Discard)
		return strings.TrimSpace(out.String()), err
	}
	orgID, err := cli("org", "create", "--name", "Acme", "--notify-email", "ops@acme.example")
	if err != nil {
		t.Fatal(err)
	}
	key, err := cli("apikey", "create", "--org", orgID)
	if err != nil {
		t.Fatal(err)
	}
	// The wrong whole key differs from the key in its last character,
	// whatever that character is.
	last := "x"
	if strings.HasSuffix(key, last) {
		last = "y"
	}
	for _, wrong := range []string{key[:20], key[:12] + "x", key[:11], key[:len(key)-1] + last, key + "x"} {
		out, err := cli("apikey", "revoke", "--prefix", wrong)
		if err == nil || out != "" || !strings.Contains(err.Error(), "first 12 characters or the whole key") {
			t.Errorf("apikey revoke --prefix %s (%d characters): err %v, printed %q; want an error naming what to pass", wrong, len(wrong), err, out)
		}
	}
	// Still active: the exact prefix revokes it now, and then nothing is left.
	if out, err := cli("apikey", "revoke", "--prefix", key[:12]); err != nil || out != "revoked" {
		t.Errorf("apikey revoke --prefix <12 characters> after the wrong attempts: %v %q", err, out)
	}
	if _, err := cli("apikey", "revoke", "--prefix", key); err == nil {
		t.Error("revoking a revoked key succeeded")
	}
	key2, err := cli("apikey", "create", "--org", orgID)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cli("apikey", "revoke", "--prefix", key2); err != nil || out != "revoked" {
		t.Errorf("apikey revoke --prefix <whole key>: %v %q", err, out)
	}
}
