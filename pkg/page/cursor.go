package page

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/google/uuid"
)

// Resource is what a list lists. A cursor carries it, so that a cursor of
// one list is refused by the others.
type Resource byte

// The lists of bulkd.
const (
	Bulks        Resource = 'b'
	Locations    Resource = 'l'
	Customers    Resource = 'c'
	DebtAccounts Resource = 'd'
)

// ErrInvalidCursor is a cursor that was not given to this organization for
// this list: made up, damaged, edited, another organization's or another
// list's.
var ErrInvalidCursor = errors.New("page: the cursor is not one this organization was given for this list")

// A cursor is base64url (unpadded) of a version byte, the resource, the
// position of the last item of a page (created_at in microseconds since
// 1970, Postgres' precision, and the id) and the organization it was given
// to. It is opaque to clients; the version lets its content change later.
const (
	cursorVersion = 1
	cursorLen     = 1 + 1 + 8 + 16 + 16
)

// The times a cursor may name: bulkd made nothing before 2000, nor will
// after 9999. A time outside them is a hand-edited cursor, which Postgres
// would not even take as a timestamp.
var (
	earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	latest   = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// Encode writes the cursor of position pos in the list of resource of
// organization org.
func Encode(resource Resource, org uuid.UUID, pos Position) string {
	b := make([]byte, 0, cursorLen)
	b = append(b, cursorVersion, byte(resource))
	b = binary.BigEndian.AppendUint64(b, uint64(pos.CreatedAt.UnixMicro()))
	b = append(b, pos.ID[:]...)
	b = append(b, org[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode reads a cursor that Encode wrote for the list of resource of
// organization org; any other is ErrInvalidCursor.
func Decode(resource Resource, org uuid.UUID, cursor string) (Position, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion || b[1] != byte(resource) || uuid.UUID(b[26:42]) != org {
		return Position{}, ErrInvalidCursor
	}
	at := time.UnixMicro(int64(binary.BigEndian.Uint64(b[2:10]))).UTC()
	if at.Before(earliest) || at.After(latest) {
		return Position{}, ErrInvalidCursor
	}
	return Position{CreatedAt: at, ID: uuid.UUID(b[10:26])}, nil
}
