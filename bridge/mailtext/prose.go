package mailtext

import (
	"fmt"
	"strings"
	"time"
)

// Duration writes d in the largest whole unit that fits twice.
func Duration(d time.Duration) string {
	unit := func(n time.Duration, name string) string {
		if v := d / n; v != 1 {
			return fmt.Sprintf("%d %ss", v, name)
		}
		return "1 " + name
	}
	switch {
	case d >= 48*time.Hour:
		return unit(24*time.Hour, "day")
	case d >= 2*time.Hour:
		return unit(time.Hour, "hour")
	case d >= 2*time.Minute:
		return unit(time.Minute, "minute")
	}
	return unit(time.Second, "second")
}

// Wrap breaks text into CRLF lines of at most width bytes at spaces.
func Wrap(text string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\r\n")
}
