// Package report is the bulk report a person reads without an API key: the
// links that open it, signed with HMAC and expiring, and the HTML page and
// CSV file it is written as. The email links to it; the API is for clients.
package report

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Errors of Verify: a link that was changed (or made up) and one that was
// genuine but is too old.
var (
	ErrTampered = errors.New("report: the link is not one bulkd signed")
	ErrExpired  = errors.New("report: the link has expired")
)

// Links signs and verifies report links.
type Links struct {
	secret  []byte
	ttl     time.Duration
	baseURL string
}

// NewLinks returns the signer of links under baseURL (bulkd's BASE_URL) that
// open for ttl after they are made.
func NewLinks(secret []byte, ttl time.Duration, baseURL string) *Links {
	return &Links{secret: secret, ttl: ttl, baseURL: baseURL}
}

// Path is the report page of a bulk; PathCSV its CSV download.
func Path(bulkID uuid.UUID) string    { return "/report/" + bulkID.String() }
func PathCSV(bulkID uuid.UUID) string { return Path(bulkID) + ".csv" }

// URL is the link to the organization's bulk's report page, open until now
// plus the links' ttl.
func (l *Links) URL(orgID, bulkID uuid.UUID, now time.Time) string {
	return l.baseURL + Path(bulkID) + "?" + l.query(orgID, bulkID, l.Expiry(now).Unix())
}

// Expiry is when a link made at now stops opening.
func (l *Links) Expiry(now time.Time) time.Time { return time.Unix(now.Add(l.ttl).Unix(), 0).UTC() }

// Query is the signed query of a link to the bulk's report that expires
// when expires (Unix seconds) has passed; the page's CSV link reuses it.
func (l *Links) query(orgID, bulkID uuid.UUID, expires int64) string {
	q := url.Values{}
	q.Set("org", orgID.String())
	q.Set("expires", strconv.FormatInt(expires, 10))
	q.Set("sig", l.sign(orgID, bulkID, expires))
	return q.Encode()
}

// sign is the link's signature: HMAC-SHA256 over what the link grants, the
// bulk, its organization and the expiry, so that none can be changed.
func (l *Links) sign(orgID, bulkID uuid.UUID, expires int64) string {
	m := hmac.New(sha256.New, l.secret)
	m.Write([]byte("bulkd report v1\n" + orgID.String() + "\n" + bulkID.String() + "\n" + strconv.FormatInt(expires, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Grant is what a verified link opens: the organization's bulk, until
// Expires.
type Grant struct {
	OrganizationID uuid.UUID
	BulkID         uuid.UUID
	Expires        time.Time
	query          string
}

// Query is the link's signed query, for links from the page to its CSV.
func (g Grant) Query() string { return g.query }

// Verify checks the query of a link to bulkID's report: ErrTampered unless
// bulkd signed exactly this bulk, organization and expiry; ErrExpired when
// it did, but the expiry has passed. The signature is checked first, so
// that a changed expiry is a tampered link, not an expired one.
func (l *Links) Verify(bulkID uuid.UUID, q url.Values, now time.Time) (Grant, error) {
	for _, name := range []string{"org", "expires", "sig"} {
		if len(q[name]) != 1 {
			return Grant{}, ErrTampered
		}
	}
	if len(q) != 3 {
		return Grant{}, ErrTampered
	}
	orgID, err := uuid.Parse(q.Get("org"))
	if err != nil {
		return Grant{}, ErrTampered
	}
	expires, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return Grant{}, ErrTampered
	}
	want := l.sign(orgID, bulkID, expires)
	if !hmac.Equal([]byte(q.Get("sig")), []byte(want)) {
		return Grant{}, ErrTampered
	}
	g := Grant{OrganizationID: orgID, BulkID: bulkID, Expires: time.Unix(expires, 0).UTC(), query: l.query(orgID, bulkID, expires)}
	if !now.Before(g.Expires) {
		return Grant{}, ErrExpired
	}
	return g, nil
}
