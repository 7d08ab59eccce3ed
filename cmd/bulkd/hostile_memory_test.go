//go:build memory

package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README states the memory of the worst bodies the limits allow. A
// review beat them within the limits: GET /results?per_page=1000 held a
// whole page and encoded it again (142 MiB in the API for the README's own
// worst body, 764 MiB for the strict body below, more with each concurrent
// reader), and a strict bulk whose objects carry ten unknown keys of '<'
// each took the worker past 200 MiB with a 253 MiB /errors answer. Results
// are now written as read and echoes as submitted.
//
// Run with
//
//	go test -tags memory -count=1 -v -run TestHostileBodyMemory ./cmd/bulkd/
func TestHostileBodyMemory(t *testing.T) {
	const (
		maxBody   = 16 << 20
		apiMiB    = 53 * 1.5 // the README's figures, with room to spare
		workerMiB = 200 * 1.1
	)
	for _, c := range []struct {
		name, query string
		body        []byte
	}{
		{"the README's worst body", "", worstBody(maxBody)},
		{"strict, unknown keys of '<'", "strict=true&mode=upsert", strictWorstBody(maxBody)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newService(t, "MAX_BODY_BYTES="+strconv.Itoa(maxBody))
			api := s.spawn("api")
			worker := s.spawn("worker", "HTTP_ADDR=127.0.0.1:0")
			waitHealthy(t, s, api)
			_, key := s.newOrg("Acme", "ops@acme.example")
			t.Logf("body: %d bytes", len(c.body))
			id := s.submitWith(key, c.query, c.body)
			s.waitCompletedWithin(key, id, 10*time.Minute)
			if w := peakMiB(t, worker.cmd.Process.Pid); w > workerMiB {
				t.Errorf("worker peak RSS %.0f MiB, over %.0f", w, float64(workerMiB))
			}
			r := s.do(http.MethodGet, "/api/v1/bulk/"+id+"/results?per_page=1000", key, nil)
			if r.status != http.StatusOK {
				t.Fatalf("GET results: %d %.300s", r.status, r.body)
			}
			t.Logf("results page: %.1f MiB", float64(len(r.body))/(1<<20))
			if a := peakMiB(t, api.cmd.Process.Pid); a > apiMiB {
				t.Errorf("API peak RSS %.0f MiB after GET /results?per_page=1000, over %.0f", a, float64(apiMiB))
			}
		})
	}
}

// strictWorstBody is worstBody's shape where each object pads with ten
// unknown keys of '<': strict mode names each key in a message.
func strictWorstBody(limit int) []byte {
	n := max((limit/objectsInWorstBody-len(failingMetadata)-20)/10-6, 1)
	unknown := make([]string, 10)
	for i := range unknown {
		unknown[i] = `"` + string(rune('A'+i)) + strings.Repeat("<", n-1) + `":0`
	}
	return bodyOf(`{` + failingMetadata + `,` + strings.Join(unknown, ",") + `}`)
}
