package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// prometheusPath is Debian's prometheus package, which `make test` installs.
const prometheusPath = "/usr/bin/prometheus"

// promServer is a Prometheus server of the test's own, on loopback.
type promServer struct {
	url  string
	logs *testenv.LogBuffer
}

// startPrometheus starts a real Prometheus on addr that scrapes the
// metrics listeners targets (METRICS_ADDR) every second, as
// configs/prometheus.yml scrapes bulkd's processes; it is stopped when the
// test ends.
func startPrometheus(t *testing.T, addr string, targets ...string) *promServer {
	t.Helper()
	if _, err := os.Stat(prometheusPath); err != nil {
		t.Fatalf("Prometheus (%s) is missing: `make test` installs it (apt-get install prometheus): %v", prometheusPath, err)
	}
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, target := range targets {
		quoted[i] = fmt.Sprintf("%q", target)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: bulkd
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &promServer{url: "http://" + addr, logs: &testenv.LogBuffer{}}
	cmd := exec.Command(prometheusPath, "--config.file="+file, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start Prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	testenv.Eventually(t, deadlineForStart, func() error {
		select {
		case <-exited:
			t.Fatalf("Prometheus exited: %s", p.logs)
		default:
		}
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		return withLogs{"Prometheus to be ready", p.logs}
	})
	return p
}

// waitForSeries waits until an instant query of promQL has a result: the
// scrapes have reached Prometheus.
func (p *promServer) waitForSeries(t *testing.T, promQL string) {
	t.Helper()
	testenv.Eventually(t, deadlineForImport, func() error {
		resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(promQL))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var answer struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
			return err
		}
		if len(answer.Data.Result) == 0 {
			return withLogs{fmt.Sprintf("Prometheus to have %s (scraped every %v)", promQL, time.Second), p.logs}
		}
		return nil
	})
}
