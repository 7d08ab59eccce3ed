package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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
	// One answer whether the name does not resolve or resolves to an address
	// refused: telling them apart would let a caller probe which internal
	// names exist.
	addrs, err := net.DefaultResolver.LookupNetIP(lookupCtx, "ip", u.Hostname())
	if err != nil || len(addrs) == 0 || !all(addrs, Public) {
		return &URLError{MsgHostNotPublic}
	}
	return nil
}

// MsgHostNotPublic is the one refusal of an endpoint for what its host
// resolves to, or for not resolving at all.
const MsgHostNotPublic = "The url field's host must resolve to public addresses only, not to loopback, private or link-local ones."

func all(addrs []netip.Addr, ok func(netip.Addr) bool) bool {
	for _, a := range addrs {
		if !ok(a) {
			return false
		}
	}
	return true
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

// msgHost is what an attempt says when its endpoint's host led nowhere
// it may go: the same whether the name did not resolve or resolved to an
// address refused, since the attempt's error is shown to the client (GET
// /api/v1/webhook), who would otherwise learn which of its names point
// into our network.
const msgHost = "webhook: the endpoint's host does not resolve to an address deliveries may go to"

// ErrPrivateAddress is a connection refused because the endpoint's name led
// to an address the policy does not allow.
var ErrPrivateAddress = errors.New(msgHost)

// ErrUnresolved is an endpoint whose host did not resolve; it reads as
// ErrPrivateAddress does.
var ErrUnresolved = errors.New(msgHost)

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

// Failure is the kind of a failed attempt, as logs name it: never the
// endpoint's URL, host or address, which may be a customer's own domain or
// carry a token.
type Failure string

// Kinds of failed attempts.
const (
	FailureStatus     Failure = "status"          // the endpoint answered, not 2xx (a redirect included: none is followed)
	FailureDNS        Failure = "dns"             // its host did not resolve
	FailurePrivate    Failure = "private_address" // its host resolved to an address the policy refuses
	FailureTimeout    Failure = "timeout"         // no answer within AttemptTimeout
	FailureTLS        Failure = "tls"             // the TLS handshake failed, the certificate's check included
	FailureConnection Failure = "connection"      // refused, reset, or closed before an answer
	FailureRequest    Failure = "request"         // anything else: a secret that does not sign, an attempt cut short
)

// Attempt is the outcome of one delivery attempt, as recorded.
type Attempt struct {
	StatusCode int // 0 when no answer came
	Duration   time.Duration
	Failure    Failure // "" when the endpoint answered 2xx
	// Err is nil when the endpoint answered 2xx. Its text is one of a few
	// fixed sentences, without the URL, the host or any address: it is
	// logged, kept by the queue and shown to the client.
	Err error
}

// Send POSTs the message to endpoint, signed with each of secrets (see
// SignAll), and reports the attempt: delivered when the endpoint answers
// 2xx. The body is never logged or returned in an error.
func Send(ctx context.Context, client *http.Client, endpoint string, secrets []string, m Message) Attempt {
	start := time.Now()
	signature, err := SignAll(secrets, m.ID, m.Timestamp, m.Body)
	if err != nil {
		return Attempt{Failure: FailureRequest, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(m.Body))
	if err != nil {
		// url.Parse's error quotes the URL.
		return Attempt{Failure: FailureRequest, Err: errors.New("webhook: the endpoint's URL does not parse")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "bulkd-webhooks")
	req.Header.Set("webhook-id", m.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(m.Timestamp.Unix(), 10))
	req.Header.Set("webhook-signature", signature)
	resp, err := client.Do(req)
	a := Attempt{Duration: time.Since(start)}
	if err != nil {
		a.Failure, a.Err = classify(err)
		return a
	}
	// Read a little of the answer so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	a.StatusCode = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		a.Failure, a.Err = FailureStatus, fmt.Errorf("webhook: the endpoint answered %d", resp.StatusCode)
	}
	return a
}

// classify names what went wrong with a request that got no answer, in
// words that carry no URL, host or address: the client's errors quote the
// URL, a resolver's the host and the resolver's own address, a dialer's
// the address the host resolved to, a certificate's the names it is valid
// for.
func classify(err error) (Failure, error) {
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		alert   tls.AlertError
		record  tls.RecordHeaderError
		netErr  net.Error
	)
	switch {
	case errors.Is(err, ErrPrivateAddress):
		return FailurePrivate, ErrPrivateAddress
	case errors.As(err, &dnsErr):
		return FailureDNS, ErrUnresolved
	case errors.As(err, &certErr):
		return FailureTLS, errors.New("webhook: the endpoint's certificate " + certProblem(certErr.Err))
	case errors.As(err, &alert), errors.As(err, &record):
		return FailureTLS, errors.New("webhook: the TLS handshake with the endpoint failed")
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return FailureTimeout, fmt.Errorf("webhook: the endpoint did not answer within %s", AttemptTimeout)
	case errors.Is(err, context.Canceled):
		return FailureRequest, errors.New("webhook: the attempt was cut short")
	case errors.Is(err, syscall.ECONNREFUSED):
		return FailureConnection, errors.New("webhook: the endpoint refused the connection")
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return FailureConnection, errors.New("webhook: the endpoint's address cannot be reached")
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FailureConnection, errors.New("webhook: the endpoint closed the connection before it answered")
	}
	return FailureRequest, errors.New("webhook: the request failed before an answer")
}

// certProblem says what is wrong with the endpoint's certificate.
func certProblem(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		return "is not signed by an authority this server trusts"
	case errors.As(err, &hostname):
		return "is not valid for its host"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "has expired or is not valid yet"
	}
	return "does not verify"
}
