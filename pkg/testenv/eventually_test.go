package testenv

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	t.Parallel()
	calls := 0
	err := Poll(time.Minute, time.Millisecond, func() error {
		if calls++; calls < 3 {
			return errors.New("a third call")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Poll = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestPollReturnsTheLastErrorWhenTimeIsUp(t *testing.T) {
	t.Parallel()
	calls := 0
	err := Poll(10*time.Millisecond, time.Millisecond, func() error {
		calls++
		return fmt.Errorf("call %d", calls)
	})
	if want := fmt.Sprintf("call %d", calls); err == nil || err.Error() != want || calls < 2 {
		t.Errorf("Poll = %v after %d calls, want %q", err, calls, want)
	}
}

// fatalRecorder is a test whose Fatalf records the failure instead of
// stopping the test.
type fatalRecorder struct {
	testing.TB
	failure string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) { r.failure = fmt.Sprintf(format, args...) }

func TestEventuallyFailsNamingWhatItWaitedFor(t *testing.T) {
	t.Parallel()
	r := &fatalRecorder{TB: t}
	Eventually(r, 10*time.Millisecond, func() error { return errors.New("the bulk to be completed; it is pending") })
	if !strings.Contains(r.failure, "the bulk to be completed; it is pending") {
		t.Errorf("Eventually failed with %q, want what it waited for", r.failure)
	}

	r = &fatalRecorder{TB: t}
	calls := 0
	Eventually(r, time.Minute, func() error {
		if calls++; calls < 3 {
			return errors.New("a third call")
		}
		return nil
	})
	if r.failure != "" || calls != 3 {
		t.Errorf("Eventually failed with %q after %d calls, want no failure after 3", r.failure, calls)
	}
}
