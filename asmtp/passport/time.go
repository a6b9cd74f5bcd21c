package passport

import (
	"fmt"
	"math"
	"time"
)

// EpochUnix is keynesis' COVID_EPOCH, 2020-01-01T00:00:00Z, in Unix seconds.
const EpochUnix = 1577836800

// Time is a keynesis Time: u32 seconds since EpochUnix.
type Time uint32

// TimeOf converts t to a keynesis Time. Instants before the epoch or after
// its u32 range (year 2156) are rejected.
func TimeOf(t time.Time) (Time, error) {
	s := t.Unix() - EpochUnix
	if s < 0 || s > math.MaxUint32 {
		return 0, fmt.Errorf("time %s is outside the keynesis time range", t.UTC().Format(time.RFC3339))
	}
	return Time(s), nil
}

// Time returns t as a UTC time.Time.
func (t Time) Time() time.Time { return time.Unix(EpochUnix+int64(t), 0).UTC() }

// Unix returns t in Unix seconds.
func (t Time) Unix() int64 { return EpochUnix + int64(t) }

// String is RFC 3339 in UTC.
func (t Time) String() string { return t.Time().Format(time.RFC3339) }
