package mail

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/asmtp/asmtp/asmtp/keys"
)

// The worked example of the payload specification (asmtp/PROTOCOL.md, "Mail
// payload"). The sealed values were also reproduced with an independent
// Python implementation of Noise_X_25519_ChaChaPoly_BLAKE2b.
const (
	vectorID      = "00112233445566778899aabbccddeeff"
	vectorMessage = "Subject: hi\r\n\r\nhello\r\n"
	// vectorPayloadHead is the payload up to the end of the data; 1901 zero
	// bytes follow, to 1952 bytes.
	vectorPayloadHead = "f8" + "01" + "01" + vectorID + "0000" + "0001" + "00000016" + "0016" +
		"5375626a6563743a2068690d0a0d0a68656c6c6f0d0a"
	vectorSenderPublic    = "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f"
	vectorRecipientPublic = "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254"
	vectorE               = "79a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85a51a"
	vectorEncS            = "501479af0068dfd2ba00f0fa5abc76243de1314d213b375fafbb678f2db514feb85b612b02fbd5e868e5b4cf8442a488"
	vectorTag             = "b9becdd3f0fbe3c4f1e40be5a39e4dfa"
	vectorSHA256          = "56a3afa7af81145e595cb3d8e2800841e4b34336776bd56a26050d3859b2ce46"
)

// counting returns 32 bytes start, start+1, ...
func counting(start byte) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func TestWorkedExample(t *testing.T) {
	var id MessageID
	if err := keys.DecodeHex(id[:], vectorID, "id"); err != nil {
		t.Fatal(err)
	}
	chunks, err := Split(id, KindMail, []byte(vectorMessage))
	if err != nil {
		t.Fatal(err)
	}
	p, err := EncodePayload(chunks[0])
	if err != nil {
		t.Fatal(err)
	}
	head, err := hex.DecodeString(vectorPayloadHead)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 1952 || !bytes.Equal(p[:len(head)], head) || !bytes.Equal(p[len(head):], make([]byte, 1952-len(head))) {
		t.Fatalf("payload %d bytes, head %x", len(p), p[:min(len(p), len(head))])
	}

	sender, err := keys.GenerateSharedSecret(bytes.NewReader(counting(0x00))) // clamps
	if err != nil {
		t.Fatal(err)
	}
	recipient, err := keys.GenerateSharedSecret(bytes.NewReader(counting(0x20)))
	if err != nil {
		t.Fatal(err)
	}
	if sender.Public().String() != vectorSenderPublic || recipient.Public().String() != vectorRecipientPublic {
		t.Fatalf("public keys %s %s", sender.Public(), recipient.Public())
	}
	content, err := SealChunk(bytes.NewReader(counting(0x40)), sender, recipient.Public(), chunks[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	got := []string{hex.EncodeToString(content[:32]), hex.EncodeToString(content[32:80]), hex.EncodeToString(content[len(content)-16:]), hex.EncodeToString(sum[:])}
	want := []string{vectorE, vectorEncS, vectorTag, vectorSHA256}
	if len(content) != BucketSmall {
		t.Fatalf("content is %d bytes, want %d", len(content), BucketSmall)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("sealed field %d = %s, want %s", i, got[i], want[i])
		}
	}
	c, err := Open(recipient, sender.Public(), content)
	if err != nil || string(c.Data) != vectorMessage || c.ID != id {
		t.Fatalf("open: %+v, %v", c, err)
	}
}

func TestWorkedExampleMultiChunk(t *testing.T) {
	var id MessageID
	if err := keys.DecodeHex(id[:], vectorID, "id"); err != nil {
		t.Fatal(err)
	}
	chunks, err := Split(id, KindMail, make([]byte, 100000))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"f80101" + vectorID + "0000" + "0002" + "000186a0" + "ff4f",
		"f80101" + vectorID + "0001" + "0002" + "000186a0" + "8751",
	}
	if len(chunks) != len(want) {
		t.Fatalf("%d chunks, want %d", len(chunks), len(want))
	}
	for i, c := range chunks {
		p, err := EncodePayload(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != MaxPayloadSize || hex.EncodeToString(p[:HeaderSize]) != want[i] {
			t.Fatalf("chunk %d: %d bytes, header %x", i, len(p), p[:HeaderSize])
		}
	}
}
