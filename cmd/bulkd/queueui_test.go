package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// chromiumPath is Debian's chromium package, which `make test` installs.
const chromiumPath = "/usr/bin/chromium"

// newBrowser starts headless Chromium with a profile of its own, and the
// extra flags given; it is closed when the test ends.
func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless Chromium (%s) is missing: `make test` installs it (apt-get install chromium): %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // tests run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	}
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// answerAuth makes the tab at ctx pause its requests (the Fetch domain), let
// every one through, and answer each HTTP authentication challenge with
// answer, after sending the challenge to challenges.
func answerAuth(t *testing.T, ctx context.Context, challenges chan<- *fetch.AuthChallenge, answer *fetch.AuthChallengeResponse) {
	t.Helper()
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	auth := chromedp.Events(ctx, fetch.AuthRequired)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range auth {
			if err != nil {
				return
			}
			select {
			case challenges <- ev.AuthChallenge:
			default:
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID, AuthChallengeResponse: answer})
		}
	}()
	handle := true
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &handle}); err != nil {
		t.Fatalf("Fetch.enable: %v", err)
	}
}

// bodyText is what the tab shows, for failure messages.
func bodyText(ctx context.Context) string {
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return text
}

// TestQueueUIInABrowser opens the queue UI in headless Chromium, as an
// operator would: without credentials the browser meets a Basic challenge
// (so it prompts for a password, instead of showing JSON), and with them
// the dashboard shows both queues. With PROMETHEUS_URL, here a real
// Prometheus scraping the service's METRICS_ADDR, the metrics view charts
// the queues.
func TestQueueUIInABrowser(t *testing.T) {
	t.Parallel()
	promAddr := freeAddr(t)
	s := startService(t, "METRICS_ADDR="+freeAddr(t), "PROMETHEUS_URL=http://"+promAddr)
	prom := startPrometheus(t, promAddr, s.env["METRICS_ADDR"])
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	// A finished bulk has put a task in each queue: the import, then its email.
	s.waitCompleted(t, key, s.submit(t, key, testenv.SeedExample(t)))
	s.smtp.WaitForMessages(t, 1, 30*time.Second)
	browser := newBrowser(t)
	url := s.base + "/admin/queues"

	t.Run("without credentials", func(t *testing.T) {
		ctx, cancel := chromedp.NewContext(browser) // a tab of its own
		defer cancel()
		ctx, cancelTimeout := context.WithTimeout(ctx, 20*time.Second)
		defer cancelTimeout()
		challenges := make(chan *fetch.AuthChallenge, 4)
		cancelAuth := &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}
		answerAuth(t, ctx, challenges, cancelAuth)
		if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
		// Navigate returns once the page has loaded, which a challenge comes
		// before; the wait only covers the listener's hand-off.
		select {
		case c := <-challenges:
			if c.Scheme != "basic" || c.Realm != "bulkd queues" {
				t.Errorf("challenge %+v, want scheme basic, realm \"bulkd queues\"", c)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the browser met no HTTP authentication challenge (it cannot prompt for a password); it shows: %.200s", bodyText(ctx))
		}
	})

	t.Run("with credentials", func(t *testing.T) {
		ctx, cancel := chromedp.NewContext(browser)
		defer cancel()
		challenges := make(chan *fetch.AuthChallenge, 4)
		login := &fetch.AuthChallengeResponse{
			Response: fetch.AuthChallengeResponseResponseProvideCredentials,
			Username: "admin", Password: "queue-secret",
		}
		answerAuth(t, ctx, challenges, login)
		// The dashboard is a single-page app: the queue table appears once
		// its API calls (sent with the same credentials) answer.
		waitCtx, cancelWait := context.WithTimeout(ctx, 20*time.Second)
		defer cancelWait()
		err := chromedp.Do(waitCtx, chromedp.Navigate(url))
		if err == nil {
			// A table cell per queue, not the chart's legend.
			_, err = chromedp.Run(waitCtx, chromedp.Poll[bool](`(() => {
				const cells = [...document.querySelectorAll("table td, table th")].map(c => c.textContent.trim());
				return cells.includes("imports") && cells.includes("notifications");
			})()`))
		}
		if err != nil {
			t.Fatalf("the dashboard did not show the imports and notifications queues: %v; the page shows: %.500q", err, bodyText(ctx))
		}
		text := bodyText(ctx)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()) // PNG
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if len(challenges) == 0 {
			t.Error("the dashboard opened without a challenge: it is not behind basic auth")
		}
		if !strings.Contains(text, "imports") || !strings.Contains(text, "notifications") {
			t.Errorf("dashboard text: %.500s", text)
		}
		shot := os.TempDir() + "/bulkd-queue-ui.png"
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Log(err)
		}
		t.Logf("screenshot of the dashboard: %s", shot)
	})

	t.Run("metrics view", func(t *testing.T) {
		// The charts read what Prometheus has scraped of the queues.
		prom.waitForSeries(t, `asynq_queue_size{queue="imports"}`)
		ctx, cancel := chromedp.NewContext(browser)
		defer cancel()
		login := &fetch.AuthChallengeResponse{
			Response: fetch.AuthChallengeResponseResponseProvideCredentials,
			Username: "admin", Password: "queue-secret",
		}
		answerAuth(t, ctx, make(chan *fetch.AuthChallenge, 4), login)
		waitCtx, cancelWait := context.WithTimeout(ctx, 30*time.Second)
		defer cancelWait()
		err := chromedp.Do(waitCtx, chromedp.Navigate(url+"/q/metrics"))
		if err == nil {
			// The queue latency chart, drawn, with a line per queue in its legend.
			_, err = chromedp.Run(waitCtx, chromedp.Poll[bool](`(() => {
				const text = document.body.innerText;
				const legend = [...document.querySelectorAll(".recharts-legend-item-text")].map(e => e.textContent.trim());
				return text.includes("Queue Latency") && document.querySelectorAll("svg.recharts-surface path.recharts-curve").length > 0 &&
					legend.includes("imports") && legend.includes("notifications");
			})()`))
		}
		if err != nil {
			t.Fatalf("the metrics view did not chart the queues: %v; the page shows: %.500q", err, bodyText(ctx))
		}
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		shot := os.TempDir() + "/bulkd-queue-metrics.png"
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Log(err)
		}
		t.Logf("screenshot of the metrics view: %s", shot)
	})

	// The API's own 401 keeps its Bearer challenge.
	if r := s.request(t, http.MethodGet, "/api/v1/bulk/x", nil); r.status != http.StatusUnauthorized ||
		!strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("API without a key: %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
	}
}
