package topic

import (
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/passport"
)

// v2 vectors (PROTOCOL.md §16.9). COMPUTED BY US with this code and checked
// with an independent Python implementation (hashlib, hmac); no other
// implementation exists yet.
const (
	vectorInboxDay   = 20429 // 2025-12-07 UTC
	vectorInboxTopic = "be1a5732f8b76d8c3e60dc435f1fc8b323940c2fd66d458570be8f0473828e3e"
	vectorPassportID = "00112233445566778899aabbccddeeff"
)

func vectorSeed() InboxSeed {
	var s InboxSeed
	for i := range s {
		s[i] = byte(i)
	}
	return s
}

func TestInboxVector(t *testing.T) {
	seed := vectorSeed()
	if got := Inbox(seed, vectorInboxDay).String(); got != vectorInboxTopic {
		t.Fatalf("Inbox(00…1f, %d) = %s, want %s", vectorInboxDay, got, vectorInboxTopic)
	}
	if Inbox(seed, vectorInboxDay+1) == Inbox(seed, vectorInboxDay) {
		t.Error("two days gave the same inbox topic")
	}
	other := seed
	other[31] ^= 1
	if Inbox(other, vectorInboxDay) == Inbox(seed, vectorInboxDay) {
		t.Error("two seeds gave the same inbox topic")
	}
	if _, ok := Inbox(seed, vectorInboxDay).Passport(); ok {
		t.Error("an inbox topic looks like a passport topic")
	}
}

func TestInboxDay(t *testing.T) {
	start := time.Unix(vectorInboxDay*86400, 0)
	for _, tt := range []struct {
		at   time.Time
		want uint32
	}{
		{start, vectorInboxDay},
		{start.Add(InboxPeriod - time.Second), vectorInboxDay},
		{start.Add(InboxPeriod), vectorInboxDay + 1},
		{start.In(time.FixedZone("UTC+14", 14*3600)), vectorInboxDay},
	} {
		if got := InboxDay(tt.at); got != tt.want {
			t.Errorf("InboxDay(%v) = %d, want %d", tt.at, got, tt.want)
		}
	}
}

func TestIntroBucketVector(t *testing.T) {
	id, err := passport.ParseHash(vectorPassportID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		bits int
		want string
	}{
		{0, "1b9d3899606e73ae693e4383aaaaa0e2b7b00add501698669ba18488f2b45874"},
		{8, "444650bb39b9cd15afff9b84c8ac701e00941c6e2d98a0167a382faffef96689"},
		{13, "ccbd4e69aab2ffbe43a0822c5ff27626fc3c53cf86941958775664e6e392198b"},
	} {
		if got := IntroBucket(id, tt.bits).String(); got != tt.want {
			t.Errorf("IntroBucket(%s, %d) = %s, want %s", vectorPassportID, tt.bits, got, tt.want)
		}
	}
	if IntroBucket(id, -3) != IntroBucket(id, 0) || IntroBucket(id, 99) != IntroBucket(id, MaxBucketBits) {
		t.Error("out-of-range widths are not clamped")
	}
}

// TestIntroBucketSharing: at width b the 2^b buckets split passports
// evenly, so each bucket of a network of n nodes holds about n/2^b; every
// passport of a bucket gets the same topic, and width 0 is one bucket.
func TestIntroBucketSharing(t *testing.T) {
	const n = 4096
	for _, b := range []int{0, 3, 7} {
		count := map[Topic]int{}
		for i := range n {
			var id passport.Hash
			id[0], id[1] = byte(i>>8), byte(i)
			count[IntroBucket(id, b)]++
		}
		if len(count) != 1<<b {
			t.Errorf("width %d: %d buckets, want %d", b, len(count), 1<<b)
		}
		for tp, c := range count {
			if want := n >> b; c < want/2 || c > want*2 {
				t.Errorf("width %d: bucket %s holds %d passports, want about %d", b, tp, c, want)
			}
		}
	}
}

func TestBucketBits(t *testing.T) {
	for _, tt := range []struct{ n, want int }{
		{0, 0}, {1, 0}, {63, 0}, {64, 1}, {127, 1}, {128, 2}, {2000, 5}, {10000, 8}, {100000, 11}, {1 << 40, MaxBucketBits},
	} {
		got := BucketBits(tt.n)
		if got != tt.want {
			t.Errorf("BucketBits(%d) = %d, want %d", tt.n, got, tt.want)
		}
		if tt.n >= 2*MinBucketNodes && got < MaxBucketBits && tt.n>>got < MinBucketNodes {
			t.Errorf("BucketBits(%d) = %d leaves %d nodes per bucket", tt.n, got, tt.n>>got)
		}
	}
}

func TestInboxDays(t *testing.T) {
	midnight := time.Date(2025, 12, 7, 0, 0, 0, 0, time.UTC)
	day := InboxDay(midnight)
	for _, tc := range []struct {
		at   time.Time
		want []uint32
	}{
		{midnight.Add(12 * time.Hour), []uint32{day}},
		{midnight, []uint32{day, day - 1}},
		{midnight.Add(InboxOverlap - time.Second), []uint32{day, day - 1}},
		{midnight.Add(InboxOverlap), []uint32{day}},
		{midnight.Add(-time.Second), []uint32{day - 1, day}},
		{midnight.Add(-InboxOverlap), []uint32{day - 1, day}},
		{midnight.Add(-InboxOverlap - time.Second), []uint32{day - 1}},
	} {
		got := InboxDays(tc.at)
		if len(got) != len(tc.want) || got[0] != tc.want[0] || (len(got) == 2 && got[1] != tc.want[1]) {
			t.Errorf("InboxDays(%s) = %v, want %v", tc.at, got, tc.want)
		}
	}
}
