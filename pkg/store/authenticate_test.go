package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulkd/bulkd/pkg/store"
)

// A credential that cannot be a key is refused as unknown, never sent to
// Postgres: bytes that are not UTF-8 made the query fail (a 500) instead.
func TestAuthenticateRefusesMalformedKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key, err := e.Store.CreateAPIKey(ctx, e.org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !store.WellFormedAPIKey(key) {
		t.Fatalf("a created key is not well formed: %d characters", len(key))
	}
	for _, bad := range []string{
		"bk_aaaaaaaa\xe9" + strings.Repeat("a", 39), // not UTF-8, in the stored prefix
		"bk_aaaaaaaaé" + strings.Repeat("a", 38),    // multi-byte
		"bk_aaaaaaaa\x00" + strings.Repeat("a", 39), // NUL
		"bk_" + strings.Repeat("a", 47) + "1",       // not base32
		"bk_" + strings.Repeat("A", 48),             // upper case
		key + strings.Repeat("a", 10_000),
	} {
		if _, err := e.Store.Authenticate(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Authenticate(%.20q) = %v, want ErrNotFound", bad, err)
		}
	}
}
