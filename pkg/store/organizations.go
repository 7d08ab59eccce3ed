package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/bulkd/bulkd/models"
)

// CreateOrganization adds an organization that notifications go to notifyEmail.
func (s *Store) CreateOrganization(ctx context.Context, name, notifyEmail string) (models.Organization, error) {
	org := models.Organization{ID: uuid.New(), Name: name, NotifyEmail: notifyEmail}
	if err := s.db.WithContext(ctx).Create(&org).Error; err != nil {
		return models.Organization{}, errorf("store: create organization: %w", err)
	}
	return org, nil
}

// Organization returns one organization.
func (s *Store) Organization(ctx context.Context, id uuid.UUID) (models.Organization, error) {
	var org models.Organization
	if err := s.db.WithContext(ctx).Take(&org, "id = ?", id).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return models.Organization{}, ErrNotFound
		}
		return models.Organization{}, errorf("store: get organization: %w", err)
	}
	return org, nil
}

// API keys read "bk_" + 48 base32 characters (30 random bytes). The first
// keyPrefixLen characters are stored in clear to find the key; the whole key
// only as its SHA-256, so a database leak reveals no usable key.
const (
	keyPrefixLen = 12
	keyScheme    = "bk_"
	keySecretLen = 48 // base32 characters of the 30 random bytes
)

// WellFormedAPIKey tells whether key has the shape CreateAPIKey gives every
// key: "bk_" and 48 characters of lowercase base32. Anything else cannot be a
// key, so it is refused without a query (and cannot reach Postgres as text
// that is not UTF-8).
func WellFormedAPIKey(key string) bool {
	secret, ok := strings.CutPrefix(key, keyScheme)
	if !ok || len(secret) != keySecretLen {
		return false
	}
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// APIKeyPrefix is the part of a key stored in clear: it names the key (in
// `bulkd apikey revoke`, in rate limits) without revealing it.
func APIKeyPrefix(key string) string { return key[:min(len(key), keyPrefixLen)] }

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// CreateAPIKey makes a new key for the organization and returns it in clear.
// This is the only time the key exists outside the client.
func (s *Store) CreateAPIKey(ctx context.Context, orgID uuid.UUID) (string, error) {
	secret := make([]byte, 30)
	if _, err := rand.Read(secret); err != nil {
		return "", errorf("store: create api key: random: %w", err)
	}
	key := keyScheme + strings.ToLower(keyEncoding.EncodeToString(secret))
	hash := sha256.Sum256([]byte(key))
	rec := models.APIKey{ID: uuid.New(), OrganizationID: orgID, Prefix: key[:keyPrefixLen], Hash: hash[:]}
	if err := s.db.WithContext(ctx).Create(&rec).Error; err != nil {
		if errors.Is(err, gorm.ErrForeignKeyViolated) {
			return "", ErrNotFound
		}
		return "", errorf("store: create api key: %w", err)
	}
	return key, nil
}

// Authenticate returns the organization of a valid, unrevoked key, or
// ErrNotFound.
func (s *Store) Authenticate(ctx context.Context, key string) (models.Organization, error) {
	if !WellFormedAPIKey(key) {
		return models.Organization{}, ErrNotFound
	}
	var rec models.APIKey
	err := s.db.WithContext(ctx).Take(&rec, "prefix = ? AND revoked_at IS NULL", key[:keyPrefixLen]).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return models.Organization{}, ErrNotFound
	}
	if err != nil {
		return models.Organization{}, errorf("store: authenticate: %w", err)
	}
	hash := sha256.Sum256([]byte(key))
	if subtle.ConstantTimeCompare(hash[:], rec.Hash) != 1 {
		return models.Organization{}, ErrNotFound
	}
	s.touchAPIKey(ctx, rec.ID)
	return s.Organization(ctx, rec.OrganizationID)
}

// keyTouchInterval is how stale a key's last_used_at may grow: a key that
// serves a thousand requests a minute is written once a minute, not a
// thousand times.
const keyTouchInterval = time.Minute

// touchAPIKey records that the key was used now, unless this process did so
// within keyTouchInterval; the update's own condition keeps several API
// processes from writing the same key more often. It is best effort: a
// request is not refused because its key's last use could not be recorded.
func (s *Store) touchAPIKey(ctx context.Context, id uuid.UUID) {
	now := time.Now()
	if last, ok := s.keysTouched.Load(id); ok && now.Sub(last.(time.Time)) < keyTouchInterval {
		return
	}
	s.keysTouched.Store(id, now)
	_ = s.db.WithContext(ctx).Exec(`UPDATE api_keys SET last_used_at = now()
		WHERE id = ? AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => ?))`,
		id, keyTouchInterval.Seconds()).Error
}

// OrganizationSummary is an organization as an operator lists it.
type OrganizationSummary struct {
	models.Organization
	ActiveKeys int        `json:"active_keys"`
	Bulks      int        `json:"bulks"`
	LastBulkAt *time.Time `json:"last_bulk_at"`
}

// ListOrganizations returns every organization, oldest first, with its
// active keys, its bulks and when it last submitted one.
func (s *Store) ListOrganizations(ctx context.Context) ([]OrganizationSummary, error) {
	var out []OrganizationSummary
	err := s.db.WithContext(ctx).Raw(`SELECT o.*,
		(SELECT count(*) FROM api_keys k WHERE k.organization_id = o.id AND k.revoked_at IS NULL) AS active_keys,
		(SELECT count(*) FROM bulks b WHERE b.organization_id = o.id) AS bulks,
		(SELECT max(created_at) FROM bulks b WHERE b.organization_id = o.id) AS last_bulk_at
		FROM organizations o ORDER BY o.created_at, o.id`).Scan(&out).Error
	if err != nil {
		return nil, errorf("store: list organizations: %w", err)
	}
	return out, nil
}

// OrganizationUpdate is a change of an organization: nil fields stay.
type OrganizationUpdate struct {
	Name        *string
	NotifyEmail *string
}

// UpdateOrganization changes the organization's name or notification
// address and returns it; an unknown id is ErrNotFound. Deliveries already
// recorded keep the address they were made for.
func (s *Store) UpdateOrganization(ctx context.Context, id uuid.UUID, u OrganizationUpdate) (models.Organization, error) {
	changes := map[string]any{}
	if u.Name != nil {
		changes["name"] = *u.Name
	}
	if u.NotifyEmail != nil {
		changes["notify_email"] = *u.NotifyEmail
	}
	if len(changes) > 0 {
		changes["updated_at"] = time.Now()
		res := s.db.WithContext(ctx).Model(&models.Organization{}).Where("id = ?", id).Updates(changes)
		if res.Error != nil {
			return models.Organization{}, errorf("store: update organization: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return models.Organization{}, ErrNotFound
		}
	}
	return s.Organization(ctx, id)
}

// ListAPIKeys returns the organization's keys, newest first, revoked ones
// included; never the keys themselves, which bulkd does not have.
func (s *Store) ListAPIKeys(ctx context.Context, orgID uuid.UUID) ([]models.APIKey, error) {
	if _, err := s.Organization(ctx, orgID); err != nil {
		return nil, err
	}
	var out []models.APIKey
	err := s.db.WithContext(ctx).Omit("hash").Where("organization_id = ?", orgID).Order("created_at DESC, id").Find(&out).Error
	if err != nil {
		return nil, errorf("store: list api keys: %w", err)
	}
	return out, nil
}

// ErrAPIKeyPrefix means RevokeAPIKey was given neither a key's stored
// prefix nor a whole key.
var ErrAPIKeyPrefix = errorf("store: revoke api key: pass the key's first %d characters or the whole key (%d characters)", keyPrefixLen, keyLen)

// keyLen is the length of a whole key: the scheme and 48 base32 characters.
const keyLen = len(keyScheme) + 48

// RevokeAPIKey disables the key named by prefixOrKey: exactly its first 12
// characters, or the whole key, whose hash must then match. Anything else is
// ErrAPIKeyPrefix, so that a mistyped longer prefix never revokes the key
// its first 12 characters happen to name. No active key that matches is
// ErrNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, prefixOrKey string) error {
	q := s.db.WithContext(ctx).Model(&models.APIKey{}).Where("revoked_at IS NULL")
	switch len(prefixOrKey) {
	case keyPrefixLen:
		q = q.Where("prefix = ?", prefixOrKey)
	case keyLen:
		hash := sha256.Sum256([]byte(prefixOrKey))
		q = q.Where("prefix = ? AND hash = ?", prefixOrKey[:keyPrefixLen], hash[:])
	default:
		return ErrAPIKeyPrefix
	}
	res := q.Update("revoked_at", time.Now())
	if res.Error != nil {
		return errorf("store: revoke api key: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}
