package smtptest_test

import (
	"encoding/base64"
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bulkd/bulkd/pkg/smtptest"
)

const (
	from = "bulkd@example.com"
	to   = "ops@acme.example"
)

// message is a multipart/alternative email with an encoded subject, a
// quoted-printable text part and a base64 HTML part.
var message = strings.ReplaceAll(`From: <`+from+`>
To: <`+to+`>
Subject: =?utf-8?q?Caf=C3=A9_report?=
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9: 3 rows=
 imported.
--b1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

`+base64.StdEncoding.EncodeToString([]byte("<p>Café: 3 rows imported.</p>"))+`
--b1--
`, "\n", "\r\n")

func addr(s *smtptest.Server) string {
	return net.JoinHostPort(s.Host(), strconv.Itoa(s.Port()))
}

func TestServer(t *testing.T) {
	t.Parallel()
	s := smtptest.NewServer(t, smtptest.Options{})

	if err := smtp.SendMail(addr(s), nil, from, []string{to}, []byte(message)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}

	got := s.Messages()
	if len(got) != 1 {
		t.Fatalf("server accepted %d messages, want 1", len(got))
	}
	if diff := cmp.Diff(smtptest.Message{From: from, To: []string{to}, Data: []byte(message)}, got[0]); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
	want := smtptest.Parsed{
		Subject: "Café report",
		Text:    "Café: 3 rows imported.",
		HTML:    "<p>Café: 3 rows imported.</p>",
	}
	p := got[0].Parse(t)
	if diff := cmp.Diff(want, p, cmpopts.IgnoreFields(smtptest.Parsed{}, "Header")); diff != "" {
		t.Errorf("parsed message (-want +got):\n%s", diff)
	}
	if p.Header.Get("To") != "<"+to+">" {
		t.Errorf("To header = %q, want %q", p.Header.Get("To"), "<"+to+">")
	}

	got[0].Data[0] = 'X'
	if s.Messages()[0].Data[0] != 'F' {
		t.Error("changing what Messages returned changed the server's record")
	}
}

func TestServerOptions(t *testing.T) {
	t.Parallel()
	const user, password = "bulkd", "s3cret"
	tests := []struct {
		name     string
		opts     smtptest.Options
		auth     smtp.Auth
		wantCode int // SMTP reply code of the error; 0 means accepted
	}{
		{name: "auth", opts: smtptest.Options{Username: user, Password: password}, auth: smtp.PlainAuth("", user, password, "127.0.0.1")},
		{name: "wrong password", opts: smtptest.Options{Username: user, Password: password}, auth: smtp.PlainAuth("", user, "guess", "127.0.0.1"), wantCode: 535},
		{name: "no auth", opts: smtptest.Options{Username: user, Password: password}, wantCode: 502},
		{name: "recipient refused", opts: smtptest.Options{RcptErr: &gosmtp.SMTPError{Code: 550, Message: "No such user"}}, wantCode: 550},
		{name: "DATA deferred", opts: smtptest.Options{DataErr: &gosmtp.SMTPError{Code: 451, Message: "Try again later"}}, wantCode: 451},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := smtptest.NewServer(t, tt.opts)

			err := smtp.SendMail(addr(s), tt.auth, from, []string{to}, []byte(message))

			wantN := 1
			if tt.wantCode != 0 {
				wantN = 0
				var tpErr *textproto.Error
				if !errors.As(err, &tpErr) || tpErr.Code != tt.wantCode {
					t.Errorf("SendMail = %v, want an SMTP %d error", err, tt.wantCode)
				}
			} else if err != nil {
				t.Fatalf("SendMail: %v", err)
			}
			if n := len(s.Messages()); n != wantN {
				t.Errorf("server accepted %d messages, want %d", n, wantN)
			}
		})
	}
}

func TestWaitForMessages(t *testing.T) {
	t.Parallel()
	s := smtptest.NewServer(t, smtptest.Options{})
	errs := make(chan error, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		errs <- smtp.SendMail(addr(s), nil, from, []string{to}, []byte(message))
	}()

	got := s.WaitForMessages(t, 1, 5*time.Second)

	if err := <-errs; err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	if len(got) != 1 || got[0].Parse(t).Subject != "Café report" {
		t.Errorf("WaitForMessages = %d messages, want the one sent", len(got))
	}
}
