package mailtext

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{4 * 24 * time.Hour, "4 days"},
		{36 * time.Hour, "36 hours"},
		{2 * time.Hour, "2 hours"},
		{90 * time.Minute, "90 minutes"},
		{6 * time.Second, "6 seconds"},
		{time.Second, "1 second"},
	} {
		if got := Duration(c.d); got != c.want {
			t.Errorf("Duration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}
