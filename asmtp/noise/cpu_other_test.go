//go:build !unix

package noise

import (
	"testing"
	"time"
)

func benchCPUTime() time.Duration { return 0 }

func benchReportCPU(*testing.B, time.Duration, int) {}
