package testenv

import (
	"errors"
	"testing"
	"time"
)

// Eventually waits until cond returns nil, and fails t if it has not within
// that time, with cond's last error: cond names in it what the test waits
// for, and what it saw instead ("bulk 0190… to be completed; it is
// processing"). cond runs at once, then every few milliseconds, backing off
// to every 50 ms, so that a short wait ends soon and a long one costs little.
//
// Call it from the test's goroutine. cond may call t.Fatal itself, for a
// state that will not come right however long the test waits.
func Eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	if err := poll(within, 0, cond); err != nil {
		t.Fatalf("waited %v for %v", within, err)
	}
}

// Poll calls cond every interval until it returns nil or within has passed,
// and returns cond's last error, or nil once it held. It is for a wait whose
// end is not a failure (the test goes on either way), or one that must
// notice at once, such as a benchmark's; a test's wait is Eventually.
func Poll(within, interval time.Duration, cond func() error) error {
	if interval <= 0 {
		return errors.New("testenv: Poll needs an interval")
	}
	return poll(within, interval, cond)
}

// poll is the loop of Eventually and Poll; interval 0 backs off from 5 ms
// to 50 ms.
func poll(within, interval time.Duration, cond func() error) error {
	const first, most = 5 * time.Millisecond, 50 * time.Millisecond
	pause := interval
	if pause == 0 {
		pause = first
	}
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(min(pause, time.Until(deadline)))
		if interval == 0 {
			pause = min(2*pause, most)
		}
	}
}
