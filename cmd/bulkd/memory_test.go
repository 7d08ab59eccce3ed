//go:build memory

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/procstat"
)

// TestWorstBodyMemory imports each of the worst bodies the limits allow in
// real `bulkd api` and `bulkd worker` processes, reads its /errors and a
// /results page of 1000 rows, and holds each process's peak RSS (VmHWM,
// read from /proc) to the figure docs/performance.md states for it (its
// Memory section), with room for the machine and the garbage collector. Run it
// with
//
//	go test -tags memory -count=1 -v -run TestWorstBodyMemory ./cmd/bulkd/
//
// It logs what it measured: a change that makes bulkd hold more fails it,
// and must state its figures in docs/performance.md.
func TestWorstBodyMemory(t *testing.T) {
	const maxBody = 16 << 20 // MAX_BODY_BYTES's default
	for _, c := range []struct {
		name, query string
		body        []byte
		// What docs/performance.md states (MiB) and the room allowed over it.
		worker, api float64
		room        float64
	}{
		// 136 MiB in the worker and 53 MiB in the API.
		{"the worst body, padded to the body limit", "", worstBody(maxBody), 136, 53, 1.5},
		// 110 MiB in the worker, 35 MiB in the API.
		{"the worst body's objects alone", "", worstBody(0), 110, 35, 1.5},
		// About 195 MiB in the worker, most of it the collector's headroom
		// already: less room over it. The API writes /errors and /results
		// as it reads them, so it holds what it holds for the worst body.
		{"strict, every object padded with unknown keys of '<'", "strict=true&mode=upsert", strictWorstBody(maxBody), 195, 53, 1.125},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newService(t, "MAX_BODY_BYTES="+strconv.Itoa(maxBody))
			api := s.spawn("api")
			worker := s.spawn("worker", "HTTP_ADDR=127.0.0.1:0")
			s.waitHealthy(t, api)
			_, key := s.newOrg(t, "Acme", "ops@acme.example")
			t.Logf("body: %d bytes", len(c.body))
			id := s.submitWith(t, key, c.query, c.body)
			s.waitCompletedWithin(t, key, id, 10*time.Minute)
			for _, path := range []string{"/errors", "/results?per_page=1000"} {
				r := s.request(t, http.MethodGet, "/api/v1/bulk/"+id+path, nil, bearer(key))
				if r.status != http.StatusOK {
					t.Fatalf("GET %s: %d %.300s", path, r.status, r.body)
				}
				t.Logf("GET %s: %d bytes (%.1f MiB)", path, len(r.body), float64(len(r.body))/(1<<20))
			}
			w, a := peakMiB(t, worker.cmd.Process.Pid), peakMiB(t, api.cmd.Process.Pid)
			t.Logf("peak RSS: worker %.0f MiB, api %.0f MiB", w, a)
			if most := c.worker * c.room; w > most {
				t.Errorf("the worker's peak RSS is %.0f MiB, over %.0f MiB: the documented %.0f MiB with %.3gx room", w, most, c.worker, c.room)
			}
			if most := c.api * 1.5; a > most {
				t.Errorf("the API's peak RSS is %.0f MiB after GET /errors and /results, over %.0f MiB: the documented %.0f MiB with 1.5x room", a, most, c.api)
			}
		})
	}
}

// Every object of the worst bodies fails with as many messages as the
// report lists: a metadata member that is not a scalar is one each.
var failingMetadata = func() string {
	keys := make([]string, bulk.MaxMessagesPerObject+1)
	for i := range keys {
		keys[i] = `"` + string(rune('a'+i)) + `":[]`
	}
	return `"metadata":{` + strings.Join(keys, ",") + `}`
}()

// objectsInWorstBody is how many objects the worst bodies carry: 1000 rows
// of a customer, a location and MaxAccountsPerBulk accounts in all.
const objectsInWorstBody = bulk.MaxRows * (bulk.MaxAccountsPerBulk/bulk.MaxRows + 2)

// worstBody is the body of at most limit bytes (0: as small as it can be)
// that gives an import the most to hold: every object failing, and what room
// is left padding every object with an unknown field, which the report
// echoes back as the object submitted.
func worstBody(limit int) []byte {
	pad := 0
	if limit > 0 {
		pad = max(limit/objectsInWorstBody-len(failingMetadata)-len(`{,"x":""},`)-8, 0)
	}
	return bodyOf(`{` + failingMetadata + `,"x":"` + strings.Repeat("p", pad) + `"}`)
}

// bodyOf is the 1000 rows of the worst bodies, every object being object.
func bodyOf(object string) []byte {
	perRow := bulk.MaxAccountsPerBulk / bulk.MaxRows
	accounts := make([]string, perRow/2)
	for j := range accounts {
		accounts[j] = object
	}
	section := strings.Join(accounts, ",")
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range bulk.MaxRows {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"customer":%s,"location":%s,"parent_debt_accounts":[%s],"debt_accounts":[%s]}`, object, object, section, section)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// peakMiB reads a process's peak resident set size, VmHWM, in MiB.
func peakMiB(t *testing.T, pid int) float64 {
	t.Helper()
	_, peak, ok := procstat.Memory(pid)
	if !ok {
		t.Fatalf("no VmHWM for process %d", pid)
	}
	return float64(peak) / (1 << 20)
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
