package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/webhook"
)

// The example of the Standard Webhooks specification signs as it says.
func TestSignMatchesTheSpecification(t *testing.T) {
	t.Parallel()
	got, err := webhook.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; err != nil || got != want {
		t.Errorf("Sign = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!"} {
		if _, err := webhook.Sign(bad, "id", time.Now(), nil); !errors.Is(err, webhook.ErrBadSecret) {
			t.Errorf("Sign with secret %q: %v", bad, err)
		}
	}
}

func TestSecretsAndSealing(t *testing.T) {
	t.Parallel()
	a, err := webhook.NewSecret()
	if err != nil || !strings.HasPrefix(a, webhook.SecretPrefix) {
		t.Fatalf("NewSecret = %q, %v", a, err)
	}
	if b, _ := webhook.NewSecret(); a == b {
		t.Error("two secrets are equal")
	}
	key := bytes.Repeat([]byte{7}, 32)
	s, err := webhook.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal(a)
	if err != nil || bytes.Contains(sealed, []byte(a)) {
		t.Fatalf("Seal: %v (sealed holds the secret: %v)", err, bytes.Contains(sealed, []byte(a)))
	}
	if got, err := s.Open(sealed); err != nil || got != a {
		t.Errorf("Open = %q, %v", got, err)
	}
	other, _ := webhook.NewSealer(bytes.Repeat([]byte{8}, 32))
	if _, err := other.Open(sealed); !errors.Is(err, webhook.ErrUnsealable) {
		t.Errorf("Open with another key: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := s.Open(sealed); !errors.Is(err, webhook.ErrUnsealable) {
		t.Errorf("Open of a changed secret: %v", err)
	}
	if _, err := webhook.NewSealer([]byte("short")); err == nil {
		t.Error("a short key is accepted")
	}
}

func TestPublic(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "1.1.1.1": true, "2606:4700:4700::1111": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"0.0.0.0": false, "100.64.0.1": false, "::1": false, "fe80::1": false, "fc00::1": false, "::ffff:127.0.0.1": false,
		"224.0.0.1": false, "255.255.255.255": false, "192.0.2.1": false,
	} {
		if got := webhook.Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

// IPv6 forms that carry an IPv4 address inside them reach that IPv4 host
// wherever the network translates them (NAT64 of an IPv6-only subnet, as AWS
// and others run it; 6to4 and Teredo relays): an endpoint on them is an
// endpoint on the IPv4 address they embed, and one that embeds a private
// address is not public, for Public (which both the registration check and
// the dial check use) nor for CheckURL. Deprecated site-local fec0::/10 is
// not public either.
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

func TestCheckURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	strict := webhook.Policy{}
	for _, u := range []string{"http://example.com/hook", "https://127.0.0.1/hook", "https://localhost/hook",
		"https://[::1]/hook", "https://169.254.169.254/latest", "https://user:pw@example.com/", "ftp://example.com",
		"/relative", "https://", "https://10.0.0.1:8443/x", "https://example.com/#frag", "https://" + strings.Repeat("a", 3000) + ".com"} {
		var ue *webhook.URLError
		if err := strict.CheckURL(ctx, u); !errors.As(err, &ue) || ue.Reason == "" {
			t.Errorf("CheckURL(%q) = %v, want a URLError", u, err)
		}
	}
	// A public literal address needs no resolver.
	if err := strict.CheckURL(ctx, "https://8.8.8.8/hook"); err != nil {
		t.Errorf("a public address: %v", err)
	}
	open := webhook.Policy{AllowPrivate: true}
	for _, u := range []string{"http://127.0.0.1:8080/hook", "https://localhost/hook"} {
		if err := open.CheckURL(ctx, u); err != nil {
			t.Errorf("AllowPrivate: CheckURL(%q) = %v", u, err)
		}
	}
}

// The client refuses, at connection time, an address that is not public,
// whatever the URL said when it was registered (DNS rebinding); redirects
// are not followed.
func TestClientRefusesPrivateAddressesAndRedirects(t *testing.T) {
	t.Parallel()
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	secret, _ := webhook.NewSecret()
	m := webhook.Message{ID: "msg_1", Timestamp: time.Now(), Body: []byte(`{}`)}

	a := webhook.Send(context.Background(), webhook.Policy{}.Client(), srv.URL, secret, m)
	if !errors.Is(a.Err, webhook.ErrPrivateAddress) || hits != 0 {
		t.Errorf("a loopback endpoint: %+v, %d hits; want refused before connecting", a, hits)
	}
	open := webhook.Policy{AllowPrivate: true}.Client()
	if a := webhook.Send(context.Background(), open, srv.URL, secret, m); a.Err != nil || a.StatusCode != 204 {
		t.Errorf("allowed: %+v", a)
	}
	if a := webhook.Send(context.Background(), open, srv.URL+"/redirect", secret, m); a.Err == nil || a.StatusCode != 302 {
		t.Errorf("a redirect must be a failed attempt: %+v", a)
	}
	if hits != 2 {
		t.Errorf("%d requests reached the server, want 2 (the redirect not followed)", hits)
	}
}

// An attempt refused because the endpoint's name led to a private address
// says that the address was refused (ErrPrivateAddress), not which it was:
// the error is recorded, and GET /api/v1/webhook shows it, so a client that
// points a name of its own at an internal one (a CNAME to
// db.internal.example) would otherwise read the internal address bulkd's
// resolver found, an oracle for the private network.
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
