// Package clienttest runs a real bulkd (`bulkd serve`, built from this
// module's source, on a database and a Redis database of its own) for the
// tests of pkg/client and of the programs built on it, such as
// cmd/bulkctl. It is test support of this module, not meant for others:
// it builds bulkd from the source it sits in.
package clienttest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/apidoc/apidoctest"
	"github.com/bulkd/bulkd/pkg/client"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// Server is a running bulkd with an organization and its API key.
type Server struct {
	// URL is where the tests reach bulkd: a proxy in front of it that checks
	// every exchange against the API description (pkg/apidoc), so that the
	// client's requests and the answers it reads are the documented ones.
	URL    string // http://127.0.0.1:port
	Bin    string // the bulkd binary
	OrgID  string
	APIKey string
	db     testenv.Database // bulkd's database; its one connection is shared under dbMu
	dbMu   sync.Mutex
	env    []string
	cmd    *exec.Cmd
	log    string // the process's output
	exited chan struct{}
}

// Build builds the command pkg of this module (such as "cmd/bulkd") into
// dir and returns the binary's path.
func Build(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	out, err := exec.Command("go", "build", "-o", bin, "github.com/bulkd/bulkd/"+pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// Start starts `bin command` (serve, or api for a server that never
// imports) for t on a new database and Redis database, with env added to
// its environment, creates an organization and a key, and stops it all
// when t ends.
func Start(t testing.TB, bin, command string, env ...string) *Server {
	t.Helper()
	s := &Server{Bin: bin, db: testenv.NewDatabase(t), exited: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("clienttest: free port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s.URL = "http://" + addr
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	s.env = append([]string{
		"DATABASE_URL=" + s.db.URL, "REDIS_URL=" + testenv.RedisURL(t), "HTTP_ADDR=" + addr, "BASE_URL=" + s.URL,
		"RATE_LIMIT=0", "SMTP_HOST=", "ADMIN_PASSWORD=", "WORKER_CONCURRENCY=2", "SHUTDOWN_TIMEOUT=5s",
		"WEBHOOK_SECRET_KEY=" + base64.StdEncoding.EncodeToString(secret), "WEBHOOK_ALLOW_PRIVATE=true",
	}, env...)
	if s.OrgID, s.APIKey, err = s.NewOrganization(); err != nil {
		t.Fatalf("clienttest: %v", err)
	}

	log, err := os.CreateTemp("", "bulkd-serve-*.log")
	if err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	s.log = log.Name()
	s.cmd = exec.Command(bin, command)
	s.cmd.Env = append(os.Environ(), s.env...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = childAttr()
	if err := s.cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("clienttest: start bulkd: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		log.Close()
		close(s.exited)
	}()
	t.Cleanup(s.stop)
	if err := s.waitReady(); err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	s.URL = checked(t, s.URL)
	return s
}

// NewOrganization creates another organization on the server and a key of
// it: a test (or an example) that counts what it stored counts its own.
func (s *Server) NewOrganization() (orgID, apiKey string, err error) {
	if orgID, err = s.command("org", "create", "--name", "Acme", "--notify-email", "ops@acme.example"); err != nil {
		return "", "", err
	}
	apiKey, err = s.command("apikey", "create", "--org", orgID)
	return orgID, apiKey, err
}

// Client is a client of the server for apiKey ("" for the server's own),
// with cfg's other settings.
func (s *Server) Client(t testing.TB, apiKey string, cfg client.Config) *client.Client {
	t.Helper()
	if apiKey == "" {
		apiKey = s.APIKey
	}
	cfg.BaseURL, cfg.APIKey = s.URL, apiKey
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Count runs a counting query on bulkd's database, to check what it
// stored; tests running in parallel may call it at once.
func (s *Server) Count(t testing.TB, query string, args ...any) int {
	t.Helper()
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	return s.db.Count(t, query, args...)
}

// Bulks counts the organization's bulks in the database.
func (s *Server) Bulks(t testing.TB, orgID string) int {
	t.Helper()
	return s.Count(t, `SELECT count(*) FROM bulks WHERE organization_id = $1`, orgID)
}

func (s *Server) command(args ...string) (string, error) {
	cmd := exec.Command(s.Bin, args...)
	cmd.Env = append(os.Environ(), s.env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("bulkd %s: %w: %s", strings.Join(args[:2], " "), err, errOut.String())
	}
	return strings.TrimSpace(out.String()), nil
}

func (s *Server) waitReady() error {
	deadline := time.Now().Add(time.Minute)
	for {
		if resp, err := http.Get(s.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("bulkd exited at start:\n%s", s.LogTail(30))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bulkd not ready after a minute:\n%s", s.LogTail(30))
		}
	}
}

// checked starts a proxy to target that checks each exchange against the
// API description (apidoctest.Transport fails t on an undocumented one) and
// returns its URL; it stops when t ends.
func checked(t testing.TB, target string) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(u); r.Out.Host = r.In.Host },
		Transport:     apidoctest.Transport(t, nil),
		FlushInterval: -1, // streamed answers pass as they come
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	return front.URL
}

// stop sends SIGTERM and kills the process if it has not shut down soon.
func (s *Server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	os.Remove(s.log)
}

// LogTail is the end of the server's log, to explain a failure.
func (s *Server) LogTail(lines int) string {
	b, _ := os.ReadFile(s.log)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// Main runs a test binary's tests and examples against one server: it
// builds bulkd, starts `bulkd serve` as Start does, hands it to ready (which keeps
// it for the tests), runs m and removes everything. A TestMain calls it:
//
//	func TestMain(m *testing.M) { os.Exit(clienttest.Main(m, func(s *clienttest.Server) { server = s })) }
func Main(m *testing.M, ready func(*Server), env ...string) (code int) {
	t := &mainT{}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintln(os.Stderr, "clienttest:", r)
			code = 1
		}
		t.cleanup()
	}()
	dir, err := os.MkdirTemp("", "clienttest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin, err := Build(dir, "cmd/bulkd")
	if err != nil {
		t.Fatal(err)
	}
	ready(Start(t, bin, "serve", env...))
	code = m.Run()
	if t.failed && code == 0 {
		code = 1 // an exchange the API description does not describe
	}
	return code
}

// mainT stands for the testing.TB that TestMain has none of, for the
// helpers of testenv and Start, which call only the methods below; any
// other method would panic on the nil TB.
type mainT struct {
	testing.TB
	mu       sync.Mutex
	failed   bool
	cleanups []func()
}

func (t *mainT) Helper()          {}
func (t *mainT) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }
func (t *mainT) Errorf(format string, a ...any) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	fmt.Fprintf(os.Stderr, "clienttest: "+format+"\n", a...)
}
func (t *mainT) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
func (t *mainT) Fatal(a ...any)                 { panic(fmt.Sprint(a...)) }

func (t *mainT) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
