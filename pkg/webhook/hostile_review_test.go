package webhook_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/webhook"
)

// Hostile review of issue 10: IPv6 forms that carry an IPv4 address inside
// them reach that IPv4 host wherever the network translates them (NAT64 of
// an IPv6-only subnet, as AWS and others run it; 6to4 and Teredo relays), so
// an endpoint on them is an endpoint on the private IPv4 address they embed.
// Public, which both the registration check and the dial check use, calls
// them public. Deprecated site-local fec0::/10 is not public either.
func TestPublicRefusesIPv6FormsOfPrivateIPv4(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"64:ff9b::a00:1",                       // NAT64 (RFC 6052) of 10.0.0.1
		"64:ff9b::7f00:1",                      // NAT64 of 127.0.0.1
		"64:ff9b::a9fe:a9fe",                   // NAT64 of 169.254.169.254, the cloud metadata service
		"::a00:1",                              // IPv4-compatible ::10.0.0.1 (deprecated, RFC 4291)
		"::7f00:1",                             // ::127.0.0.1
		"2002:a00:1::1",                        // 6to4 of 10.0.0.1
		"2002:7f00:1::1",                       // 6to4 of 127.0.0.1
		"2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo, whose client is 10.0.0.1 (bits inverted)
		"fec0::1",                              // site-local (deprecated, RFC 3879)
	} {
		if webhook.Public(netip.MustParseAddr(s)) {
			t.Errorf("Public(%s) = true; it is not an address on the public internet", s)
		}
		u := "https://[" + s + "]/hook"
		if err := (webhook.Policy{}).CheckURL(context.Background(), u); err == nil {
			t.Errorf("CheckURL(%s) = nil; the endpoint must be refused", u)
		}
	}
}

// Hostile review of issue 10: an attempt refused because the endpoint's name
// led to a private address records, and GET /api/v1/webhook shows, the
// address it led to ("dial tcp 10.1.2.3:443: …"). A client that points a
// name of its own at an internal name (a CNAME to db.internal.example) reads
// the internal address bulkd's resolver found: the check becomes an oracle
// for the private network. The error should say the address was refused,
// not which it was.
func TestRefusedAttemptDoesNotTellThePrivateAddress(t *testing.T) {
	t.Parallel()
	a := webhook.Send(context.Background(), webhook.Policy{}.Client(), "https://localhost:9/hook", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		webhook.Message{ID: "msg_1", Timestamp: time.Now(), Body: []byte(`{}`)})
	if a.Err == nil {
		t.Fatal("a delivery to localhost was not refused")
	}
	if !errors.Is(a.Err, webhook.ErrPrivateAddress) {
		t.Fatalf("attempt error %q, want ErrPrivateAddress", a.Err)
	}
	for _, addr := range []string{"127.0.0.1", "::1"} {
		if strings.Contains(a.Err.Error(), addr) {
			t.Errorf("the recorded error %q tells the private address %s the name resolved to", a.Err, addr)
		}
	}
}
