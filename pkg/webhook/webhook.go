// Package webhook delivers events to an organization's HTTPS endpoint the
// way the Standard Webhooks specification says: a signed POST whose
// webhook-id is stable per event, so that receivers can drop duplicates. It
// holds the endpoint's secret sealed for storage, refuses endpoints on
// loopback, private or link-local addresses (checked again on every
// connection, against DNS rebinding), and bounds each attempt.
package webhook

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every secret, as Standard Webhooks writes them.
const SecretPrefix = "whsec_"

// secretBytes is the size of a secret's key: 32 random bytes, HMAC-SHA256's
// block-sized key.
const secretBytes = 32

// NewSecret returns a new secret, "whsec_" and the base64 of 32 random bytes.
func NewSecret() (string, error) {
	key := make([]byte, secretBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("webhook: new secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// ErrBadSecret is a secret that is not "whsec_" and base64.
var ErrBadSecret = errors.New("webhook: a secret is whsec_ and base64")

// Sign returns the signature of a message under one secret: "v1," and the
// base64 of the HMAC-SHA256 of "id.timestamp.body" keyed with the decoded
// secret.
func Sign(secret, id string, timestamp time.Time, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || !strings.HasPrefix(secret, SecretPrefix) {
		return "", ErrBadSecret
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(timestamp.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// SignAll returns the webhook-signature header of a message signed with
// each secret: their signatures separated by spaces, as Standard Webhooks
// writes several. A receiver accepts the message when any one verifies, so
// that it can change to a new secret while the old one still signs.
func SignAll(secrets []string, id string, timestamp time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", ErrBadSecret
	}
	signatures := make([]string, len(secrets))
	for i, secret := range secrets {
		var err error
		if signatures[i], err = Sign(secret, id, timestamp, body); err != nil {
			return "", err
		}
	}
	return strings.Join(signatures, " "), nil
}

// Sealer seals secrets for storage with AES-256-GCM under a key of the
// server's (WEBHOOK_SECRET_KEY): a copy of the database alone signs nothing.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a sealer for a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("webhook: the sealing key must be 32 bytes, not %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("webhook: sealing key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("webhook: sealing key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal returns the secret encrypted: a random nonce and the ciphertext.
func (s *Sealer) Seal(secret string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("webhook: seal: %w", err)
	}
	return s.aead.Seal(nonce, nonce, []byte(secret), nil), nil
}

// ErrUnsealable is a sealed secret that this key did not seal, or that was
// changed since.
var ErrUnsealable = errors.New("webhook: the stored secret cannot be opened with this key")

// Open returns the secret that Seal sealed.
func (s *Sealer) Open(sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", ErrUnsealable
	}
	secret, err := s.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return "", ErrUnsealable
	}
	return string(secret), nil
}
