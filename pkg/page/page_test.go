package page_test

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/page"
)

var (
	org   = uuid.MustParse("01a20812-68fd-7edc-8345-0df2970612c2")
	other = uuid.MustParse("01a20812-68fd-7edc-8345-0df2970612c3")
	pos   = page.Position{CreatedAt: time.Date(2026, 11, 23, 11, 8, 42, 123456000, time.UTC), ID: uuid.MustParse("01a20812-68fd-7edc-8345-000000000001")}
)

// A cursor gives back the position it was made of, to the organization and
// the list it was made for.
func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range []page.Resource{page.Bulks, page.Locations, page.Customers, page.DebtAccounts} {
		c := page.Encode(r, org, pos)
		got, err := page.Decode(r, org, c)
		if err != nil || !got.CreatedAt.Equal(pos.CreatedAt) || got.ID != pos.ID {
			t.Errorf("%c: Decode(Encode(%v)) = %v, %v", r, pos, got, err)
		}
		if strings.ContainsAny(c, "+/=") {
			t.Errorf("%c: cursor %q is not unpadded base64url", r, c)
		}
	}
}

// forge edits the bytes of a real cursor.
func forge(edit func(b []byte) []byte) string {
	b, _ := base64.RawURLEncoding.DecodeString(page.Encode(page.Customers, org, pos))
	return base64.RawURLEncoding.EncodeToString(edit(b))
}

func atMicros(us int64) func(b []byte) []byte {
	return func(b []byte) []byte { binary.BigEndian.PutUint64(b[2:10], uint64(us)); return b }
}

// Any cursor that is not one given to this organization for this list is
// ErrInvalidCursor, never a position a store would fail on.
func TestForgedCursorsAreRefused(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]string{
		"bad base64":          "not*base64!",
		"padded base64":       page.Encode(page.Customers, org, pos) + "==",
		"too short":           forge(func(b []byte) []byte { return b[:len(b)-1] }),
		"too long":            forge(func(b []byte) []byte { return append(b, 0) }),
		"empty after decode":  "AAAA",
		"another version":     forge(func(b []byte) []byte { b[0] = 2; return b }),
		"another list":        page.Encode(page.Locations, org, pos),
		"the bulk list's":     page.Encode(page.Bulks, org, pos),
		"another org's":       page.Encode(page.Customers, other, pos),
		"before 2000":         forge(atMicros(time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC).UnixMicro())),
		"before Postgres' BC": forge(atMicros(-210866803200000001)),
		"after 9999":          forge(atMicros(time.Date(9999, 12, 31, 0, 0, 1, 0, time.UTC).UnixMicro())),
		"largest time":        forge(atMicros(1<<63 - 1)),
		"smallest time":       forge(atMicros(-1 << 63)),
	} {
		if got, err := page.Decode(page.Customers, org, c); !errors.Is(err, page.ErrInvalidCursor) {
			t.Errorf("%s (%q): %v, %v; want ErrInvalidCursor", name, c, got, err)
		}
	}
}

func TestSizeLimit(t *testing.T) {
	t.Parallel()
	s := page.Size{Default: 50, Max: 500}
	for n, want := range map[int]int{-1: 50, 0: 50, 1: 1, 50: 50, 500: 500, 501: 500} {
		if got := s.Limit(n); got != want {
			t.Errorf("Limit(%d) = %d, want %d", n, got, want)
		}
	}
}

// A query reads one more item than the page: with it there is a next page,
// whose cursor continues right below the page's last item.
func TestQueryAndCut(t *testing.T) {
	t.Parallel()
	s := page.Size{Default: 2, Max: 3}
	q, err := s.Query(page.Bulks, org, "", 0)
	if err != nil || q.Keyset.After != nil || q.Keyset.Limit != 3 {
		t.Fatalf("first page: %+v, %v", q, err)
	}
	items := []page.Position{
		{CreatedAt: pos.CreatedAt.Add(2 * time.Second), ID: uuid.New()},
		{CreatedAt: pos.CreatedAt.Add(time.Second), ID: uuid.New()},
		pos,
	}
	self := func(p page.Position) page.Position { return p }
	got, next := page.Cut(q, items, self)
	if !slices.Equal(got, items[:2]) || next == "" {
		t.Fatalf("Cut of 3 for a page of 2: %v, next %q", got, next)
	}
	q2, err := s.Query(page.Bulks, org, next, 0)
	if err != nil || q2.Keyset.After == nil || !q2.Keyset.After.CreatedAt.Equal(items[1].CreatedAt) || q2.Keyset.After.ID != items[1].ID {
		t.Fatalf("next page: %+v, %v", q2, err)
	}
	if got, next := page.Cut(q2, items[2:], self); len(got) != 1 || next != "" {
		t.Errorf("last page: %v, next %q", got, next)
	}
	if _, err := s.Query(page.Customers, org, page.Encode(page.Bulks, org, pos), 0); !errors.Is(err, page.ErrInvalidCursor) {
		t.Errorf("a bulk list's cursor on the customers list: %v", err)
	}
	if q, _ := s.Query(page.Bulks, org, "", 10); q.Keyset.Limit != 4 {
		t.Errorf("limit 10 of at most 3 reads %d", q.Keyset.Limit)
	}
}
