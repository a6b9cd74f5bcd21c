package topic

import (
	"bytes"
	"crypto/sha512"

	"github.com/asmtp/asmtp/asmtp/keys"
	"golang.org/x/crypto/pbkdf2"
)

// DeriveIterations is the PBKDF2 cost of a conversation topic (10 × 1024).
const DeriveIterations = 10240

// Derive is the conversation topic of two passport shared keys (upstream
// mk_topic): PBKDF2-HMAC-SHA512 with password = the bytewise smaller key,
// salt = the larger one, DeriveIterations iterations, Size bytes. It is
// symmetric, so both parties compute it without negotiation. It costs a few
// milliseconds; use a Cache on hot paths.
//
// Anyone who knows both shared keys can compute the topic and so link the
// pair; this is inherent to the upstream design.
func Derive(a, b keys.SharedKey) Topic {
	lo, hi := orderPair(a, b)
	var t Topic
	copy(t[:], pbkdf2.Key(lo[:], hi[:], DeriveIterations, Size, sha512.New))
	return t
}

func orderPair(a, b keys.SharedKey) (lo, hi keys.SharedKey) {
	if bytes.Compare(a[:], b[:]) <= 0 {
		return a, b
	}
	return b, a
}
