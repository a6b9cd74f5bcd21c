package noise

import (
	"bytes"
	"testing"
)

// FuzzOpenSealed feeds arbitrary bytes to Open with a fixed recipient. The
// seed corpus (testdata/fuzz/FuzzOpenSealed) holds messages sealed to that
// recipient by the key xTestSecret(t, 1). Open must never panic, and a
// message it accepts must not survive a change.
func FuzzOpenSealed(f *testing.F) {
	bob := xTestSecret(f, 2)
	f.Fuzz(func(t *testing.T, sealed []byte) {
		sender, pt, err := Open(bob, sealed)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			return
		}
		if len(pt) != len(sealed)-SealOverhead {
			t.Fatalf("%d-byte message opened to %d bytes", len(sealed), len(pt))
		}
		if sender == ([KeyLen]byte{}) {
			t.Fatal("accepted a message from the all-zero key")
		}
		// Any change to an accepted message is rejected.
		b := bytes.Clone(sealed)
		b[len(b)-1] ^= 1
		if _, _, err := Open(bob, b); err == nil {
			t.Fatal("accepted a message with its last byte flipped")
		}
	})
}
