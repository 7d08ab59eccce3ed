// Package smtptest runs a real SMTP server on the loopback interface for tests,
// recording the messages it accepts.
package smtptest

import (
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a Server. The zero value accepts every message without
// authentication.
type Options struct {
	// Username and Password, when Username is set, are the only credentials
	// the server accepts, and it refuses MAIL FROM until a client has
	// authenticated with AUTH PLAIN (allowed in clear text).
	Username, Password string

	// RcptErr and DataErr, when set, are returned for every RCPT TO or DATA
	// command, so tests can exercise refused recipients and messages. Use an
	// *smtp.SMTPError from github.com/emersion/go-smtp to choose the reply
	// code.
	RcptErr, DataErr error
}

// Message is one message the server accepted: its envelope and its raw
// content as received after DATA.
type Message struct {
	From string   // envelope sender (MAIL FROM)
	To   []string // envelope recipients (RCPT TO), in order
	Data []byte
}

// Server is an SMTP server listening on 127.0.0.1 that records every message
// it accepts. It serves until the test that created it ends.
type Server struct {
	opts Options
	port int

	mu       sync.Mutex
	messages []Message
}

// NewServer starts a Server on a free port of 127.0.0.1 and closes it when t
// and its subtests end.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	srv := &Server{opts: opts}
	s := smtp.NewServer(srv.backend())
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	srv.port = l.Addr().(*net.TCPAddr).Port
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return srv
}

// Host is the address the server listens on, "127.0.0.1".
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// Messages returns a copy of the messages accepted so far, in the order the
// server accepted them.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = Message{From: m.From, To: slices.Clone(m.To), Data: slices.Clone(m.Data)}
	}
	return out
}

// WaitForMessages waits until the server has accepted at least n messages
// and returns them all, for code that sends mail in the background. It fails
// the test with t.Fatalf if they have not arrived within timeout, so it must
// be called from the goroutine running the test.
func (s *Server) WaitForMessages(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtptest: server accepted %d messages within %v, want at least %d", len(msgs), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Server) record(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, m)
}

// backend adapts s to go-smtp; it is kept off Server's method set.
func (s *Server) backend() smtp.Backend {
	return smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{server: s}, nil
	})
}

// session is one client connection.
type session struct {
	server *Server
	authed bool
	from   string
	to     []string
}

// AuthMechanisms implements smtp.AuthSession.
func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

// Auth implements smtp.AuthSession.
func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != s.server.opts.Username || password != s.server.opts.Password {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.server.opts.Username != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.server.opts.RcptErr; err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := s.server.opts.DataErr; err != nil {
		return err
	}
	s.server.record(Message{From: s.from, To: slices.Clone(s.to), Data: data})
	return nil
}

func (s *session) Reset() { s.from, s.to = "", nil }

func (s *session) Logout() error { return nil }
