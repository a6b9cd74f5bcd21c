// Package inbound takes mail from the node to the mailstore: a Worker per
// account opens what the account's node session pushes, checks who
// sealed it, reassembles the chunks (in memory, then in the mailstore's
// durable buffer) and appends the message to INBOX, where bridge/imapserver
// serves it.
//
// # Receiving
//
// Each account's node session pushes what arrives on its registered
// topics; a Worker per account takes every content: the contact the
// topic belongs to; Noise X open with the account's shared
// secret, and the sender key checked against that contact's shared key
// (anything else is dropped and logged with topic and keys, never
// content); the chunk held in memory until its message is complete, or
// after a few seconds (HeldFlushAfter) put in the reassembly buffer
// (mailstore: durable, duplicates stored once, bounded in messages and
// bytes, incomplete messages expired after ReassemblyTimeout); once
// complete, From: is rewritten to the contact's address with the address
// book's petname (the sender's own From kept as X-ASMTP-Original-From),
// X-ASMTP-Sender names the verified passport, and the message is appended
// to INBOX, recorded as delivered and its chunks cleared in one
// transaction, after which IMAP IDLE sessions are told. A message id
// delivered before is ignored. The body is stored exactly as sent.
//
// The worker records, per topic, how far it has read the node's store
// (cursor); at start, after a missed push and when a new contact's topic is
// registered, it reads the store from there, so nothing that arrived while
// the bridge was stopped or busy is lost. The cursor it saves stays before
// the chunks held in memory, so a crash loses none of them either; and it
// is saved with an fsync, which makes everything written to the mailstore
// before it durable too, so the reassembly buffer commits chunks without
// one of their own. Mail from someone who is not in the address book does
// not arrive: the account subscribes only to its contacts' topics. Once the
// contact is added, what they sent earlier is fetched (the node's
// catch-up) and read from the store.
//
// When a contact rotates its shared key, the topic changes with it (it is
// derived from both shared keys), but mail the contact sealed with the old
// key may still be on its way: retried by its bridge, or stored on the
// network for this node to catch up on. The old topic is therefore kept
// for Config.RotationGrace (bridge.RotationGrace, 7 days): it stays
// registered (again at each start), the worker reads it like a contact's
// topic, and content on it is taken
// when sealed by the contact's old shared key, kept with the topic in the
// registry's retired_topics, and delivered as mail from that contact
// (same From and X-ASMTP-Sender). Content on it sealed by any other key,
// the new one included, is dropped. Once the grace period is over the
// bridge deregisters the topic and forgets it (looked for every
// bridge.Config.RefreshInterval); a removed contact's topics, old ones included,
// are deregistered at once.
//
// A held message that goes to the reassembly buffer is put there in the
// name of the contact its chunks' sender key belongs to: a naming-v2
// inbox (PROTOCOL.md §16) names no contact, so its topic cannot say.
// When that sender is no contact any more, the chunks are dropped with a
// warning.
//
// Incomplete messages dropped after ReassemblyTimeout, or to stay within
// the limits, are logged, and a notice saying how many parts came is put in
// INBOX, so no message disappears without a word.
package inbound
