package configs_test

import (
	"os"
	"os/exec"
	"testing"
)

// The compose file's Prometheus configuration and its alerts load: promtool
// (Debian's prometheus package, which `make test` installs) checks the
// syntax of both and every alert's PromQL.
func TestPrometheusConfigLoads(t *testing.T) {
	t.Parallel()
	const promtool = "/usr/bin/promtool"
	if _, err := os.Stat(promtool); err != nil {
		t.Fatalf("promtool (%s) is missing: `make test` installs it (apt-get install prometheus): %v", promtool, err)
	}
	out, err := exec.Command(promtool, "check", "config", "prometheus.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}
