package main

import (
	"context"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/bulkd/bulkd/pkg/apidoc/apidoctest"
)

// TestDocsRenderOfflineInABrowser opens /docs in headless Chromium with no
// network, as a new user would: the reference lists every operation of the
// API description, and the page sent no request anywhere but to bulkd
// (its files are in the binary, not on a CDN).
func TestDocsRenderOfflineInABrowser(t *testing.T) {
	t.Parallel()
	s := startService(t)
	// No host name resolves but the loopback's: a page that needs anything
	// from elsewhere (a CDN) cannot get it.
	browser := newBrowser(t, chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"))
	ctx, cancel := chromedp.NewContext(browser) // a tab of its own
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	var mu sync.Mutex
	var requested []string
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requested = append(requested, e.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.base+"/docs")); err != nil {
		t.Fatalf("open /docs: %v", err)
	}
	// Swagger UI is a single-page app: the operations appear once it has
	// read /openapi.json.
	operations, err := chromedp.Run(ctx, chromedp.Poll[[]string](`(() => {
		const ops = [...document.querySelectorAll(".opblock")].map(o => {
			const method = o.querySelector(".opblock-summary-method");
			const path = o.querySelector(".opblock-summary-path");
			return method && path ? method.textContent.trim() + " " + (path.dataset.path || path.textContent.trim()) : "";
		});
		return ops.length > 0 ? ops : null;
	})()`))
	if err != nil {
		t.Fatalf("the reference shows no operations: %v; the page shows: %.500q", err, bodyText(ctx))
	}
	for _, want := range []string{"POST /api/v1/bulk", "GET /api/v1/bulk/{id}/errors", "PATCH /api/v1/customers/{id}", "POST /api/v1/batch"} {
		if !slices.Contains(operations, want) {
			t.Errorf("the reference does not list %s; it lists %q", want, operations)
		}
	}
	for _, r := range apidoctest.Routes(t) {
		if op := r.Method + " " + r.Path; !slices.Contains(operations, op) {
			t.Errorf("the reference does not list %s", op)
		}
	}

	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err == nil {
		shot := os.TempDir() + "/bulkd-docs.png"
		if err := os.WriteFile(shot, png, 0o644); err == nil {
			t.Logf("screenshot of the reference: %s", shot)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	base, _ := url.Parse(s.base)
	if len(requested) == 0 {
		t.Fatal("no request was seen: the listener is not working")
	}
	for _, u := range requested {
		parsed, err := url.Parse(u)
		if err == nil && (parsed.Scheme == "data" || parsed.Scheme == "blob") {
			continue // made in the page, sent nowhere
		}
		if err != nil || parsed.Hostname() != base.Hostname() || !strings.HasPrefix(parsed.Hostname(), "127.") {
			t.Errorf("the page requested %s: only bulkd at %s may be asked", u, s.base)
		}
	}
	if !slices.ContainsFunc(requested, func(u string) bool { return strings.HasSuffix(u, "/openapi.json") }) {
		t.Errorf("the page never read /openapi.json; it requested %q", requested)
	}
}
