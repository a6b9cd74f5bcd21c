package poldercast

import (
	"bytes"
	"errors"
	"testing"
)

// idOf returns an id whose top byte is b and other bytes zero: ids ordered
// like their bytes, easy to read in tables.
func idOf(b byte) ID {
	var id ID
	id[0] = b
	return id
}

func TestClockwise(t *testing.T) {
	max := ID{}
	for i := range max {
		max[i] = 0xff
	}
	one := ID{}
	one[31] = 1
	tests := []struct {
		name     string
		from, to ID
		want     distance
	}{
		{"same", idOf(5), idOf(5), distance{}},
		{"after", idOf(5), idOf(7), distance{2 << 56, 0, 0, 0}},
		{"wraps past the top", idOf(0xfe), idOf(1), distance{3 << 56, 0, 0, 0}},
		{"largest to smallest is one step", max, ID{}, distance{0, 0, 0, 1}},
		{"borrow across limbs", one, ID{}, distance{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clockwise(tt.from, tt.to); got != tt.want {
				t.Errorf("clockwise(%x, %x) = %x, want %x", tt.from[:1], tt.to[:1], got, tt.want)
			}
		})
	}
}

// TestRingKeepsClosest covers upstream bug 1 (rings kept the farthest ids,
// sides swapped, no wraparound): whatever the order peers arrive in, the
// ring holds the closest successors and predecessors around the circle.
func TestRingKeepsClosest(t *testing.T) {
	tests := []struct {
		name     string
		self     byte
		peers    []byte
		half     int
		succ     []byte
		pred     []byte
		dropPeer int // index into peers to drop and rebuild, -1 for none
	}{
		{"closest, not farthest", 0x50, []byte{0x90, 0x10, 0x60, 0x40, 0x70, 0x20}, 2, []byte{0x60, 0x70}, []byte{0x40, 0x20}, -1},
		{"arrival order irrelevant", 0x50, []byte{0x40, 0x60, 0x70, 0x20, 0x90, 0x10}, 2, []byte{0x60, 0x70}, []byte{0x40, 0x20}, -1},
		{"successors wrap past the largest id", 0xf0, []byte{0x10, 0x20, 0xe0, 0x80}, 2, []byte{0x10, 0x20}, []byte{0xe0, 0x80}, -1},
		{"predecessors wrap below the smallest id", 0x05, []byte{0x30, 0xf0, 0xe0, 0x10}, 2, []byte{0x10, 0x30}, []byte{0xf0, 0xe0}, -1},
		{"one other subscriber is on both sides", 0x50, []byte{0x10}, 2, []byte{0x10}, []byte{0x10}, -1},
		{"two others: each on both sides", 0x50, []byte{0x10, 0x90}, 2, []byte{0x90, 0x10}, []byte{0x10, 0x90}, -1},
		{"one per side", 0x50, []byte{0x90, 0x60, 0x40, 0x10}, 1, []byte{0x60}, []byte{0x40}, -1},
		{"drop refills from the next known", 0x50, []byte{0x60, 0x70, 0x80, 0x40}, 2, []byte{0x70, 0x80}, []byte{0x40, 0x80}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			self := idOf(tt.self)
			var topic Topic
			r := newRing(topic, tt.half)
			var peers []*peer
			for _, b := range tt.peers {
				pe := &peer{Profile: Profile{ID: idOf(b)}}
				pe.shared = []*ring{r}
				peers = append(peers, pe)
				r.offer(self, pe, tt.half)
				r.offer(self, pe, tt.half) // offering twice changes nothing
			}
			if tt.dropPeer >= 0 {
				gone := peers[tt.dropPeer]
				if !r.drop(gone) {
					t.Fatalf("drop(%x) = false, want true", gone.ID[:1])
				}
				peers = append(peers[:tt.dropPeer], peers[tt.dropPeer+1:]...)
				r.rebuild(self, peers, tt.half)
			}
			if got := slotBytes(r.succ); string(got) != string(tt.succ) {
				t.Errorf("succ = %x, want %x", got, tt.succ)
			}
			if got := slotBytes(r.pred); string(got) != string(tt.pred) {
				t.Errorf("pred = %x, want %x", got, tt.pred)
			}
		})
	}
}

func slotBytes(s []ringSlot) []byte {
	var out []byte
	for _, x := range s {
		out = append(out, x.p.ID[0])
	}
	return out
}

func TestInterestLevel(t *testing.T) {
	tests := []struct {
		missing, size int
		want          uint8
	}{
		{0, 4, 1}, // full ring: still advertised (upstream bug 3)
		{1, 4, 63},
		{2, 4, 126},
		{4, 4, 252},
		{0, 2, 1},
		{2, 2, 254},
		{64, 64, 192},
	}
	for _, tt := range tests {
		if got := interestLevel(tt.missing, tt.size); got != tt.want {
			t.Errorf("interestLevel(%d, %d) = %d, want %d", tt.missing, tt.size, got, tt.want)
		}
	}
}

func TestNormalizeSubscriptions(t *testing.T) {
	a, b, c := Topic{1}, Topic{2}, Topic{3}
	tests := []struct {
		name    string
		in      []Subscription
		want    []Topic
		wantErr error
	}{
		{"empty", nil, nil, nil},
		{"sorted kept", []Subscription{{Topic: a}, {Topic: b}}, []Topic{a, b}, nil},
		{"unsorted sorted", []Subscription{{Topic: c}, {Topic: a}, {Topic: b}}, []Topic{a, b, c}, nil},
		{"duplicate", []Subscription{{Topic: a}, {Topic: a}}, nil, ErrInvalidProfile},
		{"unsorted duplicate", []Subscription{{Topic: b}, {Topic: a}, {Topic: b}}, nil, ErrInvalidProfile},
		{"too many", make([]Subscription, MaxSubscriptions+1), nil, ErrTooManySubscriptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := normalizeSubscriptions(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d topics, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i].Topic != tt.want[i] {
					t.Errorf("topic %d = %x, want %x", i, got[i].Topic[:1], tt.want[i][:1])
				}
			}
		})
	}
}

// TestCompareTopicsMatchesBytes: the word-wise comparison orders topics as
// bytes.Compare does, including topics that differ only past the first
// words (passport topics: 16 zero bytes ‖ id).
func TestCompareTopicsMatchesBytes(t *testing.T) {
	var zero Topic
	passport := func(last byte) Topic { var tp Topic; tp[31] = last; return tp }
	word := func(i int, v byte) Topic { var tp Topic; tp[i] = v; return tp }
	tops := []Topic{zero, passport(1), passport(2), word(16, 1), word(15, 1), word(8, 1), word(7, 1), word(0, 0xff), word(24, 0x80)}
	for _, a := range tops {
		for _, b := range tops {
			if got, want := compareTopics(a, b), bytes.Compare(a[:], b[:]); got != want {
				t.Errorf("compareTopics(%x, %x) = %d, want %d", a, b, got, want)
			}
		}
	}
}
