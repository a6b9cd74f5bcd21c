// Package passport implements keynesis passports as ASMTP uses them.
//
// A passport is a user's identity: a small permissioned block chain, written
// only by the user's own devices, that records which Ed25519 master (device)
// keys are active and which Curve25519 shared key currently identifies the
// user for mail. The shared key's secret half is sealed inside the chain to
// every active master key under a passphrase, so any of the user's devices
// can recover it; contacts only need the public half, from which the mail
// topics are derived (package topic). Passports travel as PassportBlocks
// export files and, block by block, on their passport topic.
//
// Wire formats and ledger rules follow keynesis 1.4 (PROTOCOL.md
// §11, P.1–P.8), with the stricter checks listed on ParseBlock, Genesis and
// (*Ledger).Apply. Validation never reads the clock: callers pass now.
package passport
