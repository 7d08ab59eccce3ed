package report_test

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/report"
)

func TestLinksVerify(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef")
	links := report.NewLinks(secret, time.Hour, "https://bulkd.example.com")
	org, bulkID := uuid.New(), uuid.New()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	link, err := url.Parse(links.URL(org, bulkID, now))
	if err != nil {
		t.Fatal(err)
	}
	if link.Path != "/report/"+bulkID.String() || link.Host != "bulkd.example.com" {
		t.Fatalf("link %s", link)
	}
	q := link.Query()
	g, err := links.Verify(bulkID, q, now.Add(59*time.Minute))
	if err != nil || g.OrganizationID != org || g.BulkID != bulkID || !g.Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("Verify = %+v, %v", g, err)
	}
	if g.Query() != link.RawQuery {
		t.Errorf("the grant's query %q is not the link's %q", g.Query(), link.RawQuery)
	}
	if _, err := links.Verify(bulkID, q, now.Add(time.Hour)); !errors.Is(err, report.ErrExpired) {
		t.Errorf("at its expiry: %v, want ErrExpired", err)
	}
	sig := q.Get("sig")
	otherSig := "A" + sig[1:]
	if sig[0] == 'A' {
		otherSig = "B" + sig[1:]
	}
	changed := func(name, value string) url.Values {
		c := url.Values{}
		for k, v := range q {
			c[k] = append([]string(nil), v...)
		}
		if value == "" {
			c.Del(name)
		} else {
			c.Set(name, value)
		}
		return c
	}
	for name, bad := range map[string]url.Values{
		"signature":           changed("sig", otherSig),
		"expiry (later)":      changed("expires", "99999999999"),
		"organization":        changed("org", uuid.NewString()),
		"no signature":        changed("sig", ""),
		"no expiry":           changed("expires", ""),
		"expiry not a number": changed("expires", "soon"),
		"extra parameter":     func() url.Values { c := changed("sig", q.Get("sig")); c.Set("x", "1"); return c }(),
		"repeated signature":  func() url.Values { c := changed("sig", q.Get("sig")); c.Add("sig", q.Get("sig")); return c }(),
	} {
		if _, err := links.Verify(bulkID, bad, now); !errors.Is(err, report.ErrTampered) {
			t.Errorf("%s changed: %v, want ErrTampered", name, err)
		}
	}
	if _, err := links.Verify(uuid.New(), q, now); !errors.Is(err, report.ErrTampered) {
		t.Errorf("another bulk: %v, want ErrTampered", err)
	}
	other := report.NewLinks([]byte("another-secret-another-secret-32"), time.Hour, "https://bulkd.example.com")
	if _, err := other.Verify(bulkID, q, now); !errors.Is(err, report.ErrTampered) {
		t.Errorf("another secret: %v, want ErrTampered", err)
	}
	// An expired link that was changed is tampered, not expired.
	if _, err := links.Verify(bulkID, changed("sig", otherSig), now.Add(2*time.Hour)); !errors.Is(err, report.ErrTampered) {
		t.Errorf("an expired, changed link: %v, want ErrTampered", err)
	}
}

func TestCSVDefusesFormulas(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	w := report.ErrorsCSV(&b)
	for _, l := range []bulk.ErrorLine{
		{Row: 1, Section: "customer", ExternalID: "=HYPERLINK(\"http://x\")", Field: "email", Message: "The email field must be a valid email address."},
		{Row: 2, Section: "debt_accounts", Index: 3, ExternalID: "-42", Field: "+x", Message: "@sum"},
		{Row: 3, Section: "location", ExternalID: "plain, with \"quotes\"", Field: "name", Message: "ok"},
	} {
		if err := w.Error(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "row,section,index,external_id,field,message\n" +
		"1,customer,0,\"'=HYPERLINK(\"\"http://x\"\")\",email,The email field must be a valid email address.\n" +
		"2,debt_accounts,3,'-42,'+x,'@sum\n" +
		"3,location,0,\"plain, with \"\"quotes\"\"\",name,ok\n"
	if b.String() != want {
		t.Errorf("CSV:\n%s\nwant:\n%s", b.String(), want)
	}
	var empty bytes.Buffer
	if err := report.ErrorsCSV(&empty).Flush(); err != nil || empty.String() != "row,section,index,external_id,field,message\n" {
		t.Errorf("no lines: %q, %v", empty.String(), err)
	}
}

func TestPageEscapesWhatClientsSent(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	err := report.WritePage(&b, report.Page{
		Bulk:  bulksvc.View{Accepted: bulksvc.Accepted{Status: "completed", Count: 1}, Mode: "create"},
		Lines: []bulk.ErrorLine{{Row: 1, Section: "customer", ExternalID: `<script>alert(1)</script>`, Field: "<b>", Message: "m"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<script>") || !strings.Contains(b.String(), "&lt;script&gt;") {
		t.Errorf("the page does not escape an external id:\n%s", b.String())
	}
}

func TestWritten(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		l, c, a int
		want    string
	}{
		{1, 1, 3, "5 records (1 location, 1 customer, 3 debt accounts)"},
		{0, 0, 1, "1 record (0 locations, 0 customers, 1 debt account)"},
		{0, 0, 0, "0 records (0 locations, 0 customers, 0 debt accounts)"},
	} {
		if got := report.Written(tc.l, tc.c, tc.a); got != tc.want {
			t.Errorf("Written(%d, %d, %d) = %q, want %q", tc.l, tc.c, tc.a, got, tc.want)
		}
	}
}
