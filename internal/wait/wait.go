// Package wait is the tests' one way to wait for a condition: poll it until
// it holds (or, for Never, until a time passes without it holding), so a
// test waits exactly as long as the system under test needs and never
// sleeps for a guessed time.
//
// The poll interval starts short and grows, so a cheap condition is seen
// soon after it becomes true and an expensive one (a client process, a
// SQL query) is not run hundreds of times a second.
package wait

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	firstInterval = 5 * time.Millisecond
	maxInterval   = 200 * time.Millisecond
)

// Poll calls cond until it returns true or timeout passes, and reports
// whether it held. It is for callers that do not fail the test on a
// timeout (they retry, log or report otherwise).
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for interval := firstInterval; ; interval = min(2*interval, maxInterval) {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(interval, left))
	}
}

// Until fails the test unless cond holds within timeout. The failure
// names what was awaited and adds the output of each state function,
// called at the time of the failure, so the message shows where things
// stood (the last error, the queue's length...).
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool, state ...func() string) {
	t.Helper()
	if Poll(timeout, cond) {
		return
	}
	t.Fatalf("not within %v: %s%s", timeout, what, describe(state))
}

// Never fails the test if cond holds at any time within d.
func Never(t testing.TB, d time.Duration, what string, cond func() bool, state ...func() string) {
	t.Helper()
	if Poll(d, cond) {
		t.Fatalf("within %v: %s%s", d, what, describe(state))
	}
}

func describe(state []func() string) string {
	var b strings.Builder
	for _, f := range state {
		fmt.Fprintf(&b, "\n%s", f())
	}
	return b.String()
}
