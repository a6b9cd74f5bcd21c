// Package noise holds the Noise Protocol Framework uses of ASMTP
// (PROTOCOL.md §3–5, §9, §P.5, §P.7):
//
//   - the link handshake Noise_IK_ed25519_ChaChaPoly_BLAKE2b, where static
//     and ephemeral keys are Ed25519 keys used as Diffie-Hellman keys
//     (keynesis' "ed25519" DH), with an empty prologue and empty payloads;
//     its final handshake hash is the 64-byte session id;
//   - the link ciphers that handshake yields, one per direction, which REKEY
//     after every message (LinkCipher);
//   - the one-way Noise_X_25519_ChaChaPoly_BLAKE2b message that seals mail
//     content from a passport shared key to another (Seal, Open);
//   - the passport shared-key seal, a non-standard Kpsk0 (sharedkey.go).
//
// The IK and X patterns run on github.com/flynn/noise; this package fixes
// the cipher suites, sizes and error values and hides the rest.
package noise
