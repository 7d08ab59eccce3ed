package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// AttemptTimeout bounds one delivery attempt, connection to answer.
const AttemptTimeout = 10 * time.Second

// MaxURLLen bounds an endpoint's URL.
const MaxURLLen = 2048

// Policy says which endpoints are allowed: https on public addresses, or,
// with AllowPrivate (development and tests), also http and any address.
type Policy struct {
	AllowPrivate bool
}

// URLError is an endpoint that the policy refuses, with the reason a user
// reads.
type URLError struct{ Reason string }

func (e *URLError) Error() string { return e.Reason }

// CheckURL tells whether raw is an endpoint the policy allows: an absolute
// https URL (http too with AllowPrivate) without credentials, whose host
// resolves only to public addresses. The check is made again on every
// connection (Client), since what a name resolves to can change.
func (p Policy) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || len(raw) > MaxURLLen || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		return &URLError{fmt.Sprintf("The url field must be an absolute https URL of at most %d characters.", MaxURLLen)}
	case u.Scheme != "https" && !(p.AllowPrivate && u.Scheme == "http"):
		return &URLError{"The url field must be an https URL."}
	case u.User != nil:
		return &URLError{"The url field must not carry a user name or password."}
	case u.Fragment != "":
		return &URLError{"The url field must not have a fragment."}
	}
	if p.AllowPrivate {
		return nil
	}
	lookupCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(lookupCtx, "ip", u.Hostname())
	if err != nil || len(addrs) == 0 {
		return &URLError{"The url field's host does not resolve."}
	}
	for _, a := range addrs {
		if !Public(a) {
			return &URLError{"The url field must not point at a loopback, private or link-local address."}
		}
	}
	return nil
}

// nonPublic are the ranges beyond netip's predicates that no endpoint of
// ours is on: "this network", shared address space, IETF protocol
// assignments, benchmarking, reserved, and the documentation ranges.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
	// IPv6 forms that carry an IPv4 address a gateway may translate to: NAT64,
	// IPv4-compatible, 6to4 and Teredo; and the old site-local range.
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("::/96"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("2001::/32"),
	netip.MustParsePrefix("fec0::/10"),
}

// Public tells whether a is an address on the public internet: not
// loopback, private, link-local, multicast, unspecified or reserved.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// ErrPrivateAddress is a connection refused because the endpoint's name led
// to an address the policy does not allow.
var ErrPrivateAddress = errors.New("webhook: the endpoint resolved to a loopback, private or link-local address")

// Client returns the HTTP client of deliveries: each attempt bounded by
// AttemptTimeout, redirects not followed (a 3xx is a failed attempt), and,
// unless AllowPrivate, every connection refused whose address is not public,
// whatever the name resolved to when the endpoint was registered.
func (p Policy) Client() *http.Client {
	dialer := &net.Dialer{Timeout: AttemptTimeout}
	if !p.AllowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !Public(ap.Addr()) {
				return ErrPrivateAddress
			}
			return nil
		}
	}
	transport := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   AttemptTimeout,
		ResponseHeaderTimeout: AttemptTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       time.Minute,
	}
	return &http.Client{
		Transport:     transport,
		Timeout:       AttemptTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Message is one event to deliver: its stable id, its body, and when it is
// sent (the webhook-timestamp).
type Message struct {
	ID        string
	Timestamp time.Time
	Body      []byte
}

// Attempt is the outcome of one delivery attempt, as recorded.
type Attempt struct {
	StatusCode int // 0 when no answer came
	Duration   time.Duration
	Err        error // nil when the endpoint answered 2xx
}

// Send POSTs the message to endpoint, signed with secret, and reports the
// attempt: delivered when the endpoint answers 2xx. The body is never
// logged or returned in an error.
func Send(ctx context.Context, client *http.Client, endpoint, secret string, m Message) Attempt {
	start := time.Now()
	signature, err := Sign(secret, m.ID, m.Timestamp, m.Body)
	if err != nil {
		return Attempt{Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(m.Body))
	if err != nil {
		return Attempt{Err: fmt.Errorf("webhook: request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bulkd-webhooks")
	req.Header.Set("webhook-id", m.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(m.Timestamp.Unix(), 10))
	req.Header.Set("webhook-signature", signature)
	resp, err := client.Do(req)
	a := Attempt{Duration: time.Since(start)}
	if err != nil {
		a.Err = fmt.Errorf("webhook: %w", redactURL(err))
		return a
	}
	// Read a little of the answer so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	a.StatusCode = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		a.Err = fmt.Errorf("webhook: the endpoint answered %d", resp.StatusCode)
	}
	return a
}

// redactURL drops the URL from a client error (it may carry a token in its
// query), keeping what went wrong; a refused address is not named (the
// client would learn what its name resolves to inside our network).
func redactURL(err error) error {
	if errors.Is(err, ErrPrivateAddress) {
		return ErrPrivateAddress
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
