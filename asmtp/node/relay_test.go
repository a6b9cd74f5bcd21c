package node

import (
	"testing"

	"github.com/asmtp/asmtp/asmtp/topic"
)

func TestSeenCacheEvictsOldest(t *testing.T) {
	h := func(b byte) [32]byte { return [32]byte{b} }
	c := newSeenCache(3)
	steps := []struct {
		add     byte
		wantNew bool
	}{
		{1, true}, {2, true}, {3, true},
		{1, false}, // still known
		{4, true},  // evicts 1, the oldest
		{3, false}, // the newest survive
		{1, true},  // 1 was forgotten; evicts 2
		{2, true},
		{4, false},
	}
	for i, s := range steps {
		if got := c.add(h(s.add)); got != s.wantNew {
			t.Fatalf("step %d: add(%d) = %v, want %v", i, s.add, got, s.wantNew)
		}
	}
}

func TestMessageHashCoversTopic(t *testing.T) {
	content := []byte("same content")
	cases := []struct {
		a, b topic.Topic
		ca   []byte
		cb   []byte
		same bool
	}{
		{topic.Topic{1}, topic.Topic{1}, content, content, true},
		{topic.Topic{1}, topic.Topic{2}, content, content, false},
		{topic.Topic{1}, topic.Topic{1}, content, []byte("other"), false},
	}
	for i, c := range cases {
		if got := messageHash(c.a, c.ca) == messageHash(c.b, c.cb); got != c.same {
			t.Errorf("case %d: equal %v, want %v", i, got, c.same)
		}
	}
}
