package passport

import (
	"encoding/hex"
	"testing"

	"golang.org/x/crypto/blake2b"
)

// Vectors from PROTOCOL.md §10: the keynesis Hash is BLAKE2b with
// a 16-byte digest (not a truncated BLAKE2b-512), and BLAKE2b-256 hashes
// passphrases and relay dedupe keys.
func TestHashVectors(t *testing.T) {
	if got := HashOf([]byte("hello")).String(); got != "46fb7408d4f285228f4af516ea25851b" {
		t.Errorf("BLAKE2b-128(hello) = %s", got)
	}
	full := blake2b.Sum512([]byte("hello"))
	if HashOf([]byte("hello")).String() == hex.EncodeToString(full[:16]) {
		t.Error("Hash is a truncated BLAKE2b-512, not the 16-byte digest")
	}
	if got := blake2b.Sum256([]byte("asmtp")); hex.EncodeToString(got[:]) != "8456d4ab08fc4a6770bd53c1f4bcba477617fc9a4ced2b23d92ddd93fba60431" {
		t.Errorf("BLAKE2b-256(asmtp) = %x", got)
	}
	h, err := ParseHash("46FB7408D4F285228F4AF516EA25851B")
	if err != nil || h != HashOf([]byte("hello")) {
		t.Errorf("ParseHash upper case: %v, %v", h, err)
	}
	if _, err := ParseHash("46fb"); err == nil {
		t.Error("short hash accepted")
	}
}
