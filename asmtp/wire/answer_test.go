package wire

import (
	"testing"

	"golang.org/x/crypto/blake2b"

	"github.com/asmtp/asmtp/asmtp/topic"
)

func TestAnswerTopicIsItsHash(t *testing.T) {
	if want := blake2b.Sum256([]byte("asmtp answer marker v1")); AnswerTopic != topic.Topic(want) {
		t.Fatalf("AnswerTopic = %x, want BLAKE2b-256 of its name %x", AnswerTopic, want)
	}
}

func TestAnswerMarkerRoundTrip(t *testing.T) {
	var q QueryTopicMessages
	q.Topic[0], q.Topic[31], q.Since = 0xab, 0xcd, 0x0221561d
	for _, st := range []AnswerStatus{AnswerBegins, AnswerComplete, AnswerRefused} {
		m := AnswerMarker{Query: q, Status: st}.Topic()
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := ParseAnswerMarker(d.(Topic))
		if !ok || got.Query != q || got.Status != st {
			t.Errorf("status %d: parsed %+v, %v", st, got, ok)
		}
	}
	bad := []Topic{
		{Topic: q.Topic, Content: AnswerMarker{Query: q, Status: AnswerComplete}.Topic().Content}, // other topic
		{Topic: AnswerTopic, Content: make([]byte, answerMarkerSize-1)},                           // short
		{Topic: AnswerTopic, Content: append(make([]byte, answerMarkerSize-1), 9)},                // unknown status
	}
	for i, m := range bad {
		if _, ok := ParseAnswerMarker(m); ok {
			t.Errorf("case %d parsed as a marker", i)
		}
	}
}
