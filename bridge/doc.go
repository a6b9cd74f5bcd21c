// Package bridge lets ordinary mail clients use ASMTP: it is the one place
// where the node (asmtp/node) and the local mailboxes (mailstore) meet.
// It is the composition root: Config, and the Bridge that opens the
// stores, wires the servers and workers of the packages below to each
// other, keeps the node in step with the registry and runs them all.
// Each package below does one job behind the narrow interfaces it
// declares; none of them holds a *Bridge.
//
//   - bridge/accounts: the registry of accounts, passwords,
//     pseudo-addresses and address books, the login check
//     (accounts.Authenticator) and the CardDAV address book.
//   - bridge/auth: what the three servers share about logins and TLS.
//   - bridge/smtpserver, bridge/imapserver, bridge/carddav: the
//     protocols, over go-smtp, go-imap v2 and go-webdav; bridge/listen
//     and bridge/loginlimit bound their connections and login attempts.
//   - bridge/outbound: outbox to node (sealing, publishing, bounces).
//   - bridge/inbound: node to INBOX (opening, sender check, reassembly).
//   - bridge/presence: the accounts on the node (presence.Roster): node
//     users, their passports, contacts' topics, followed passports.
//   - bridge/naming: naming v2 for the accounts (PROTOCOL.md §16): inbox
//     topics, intro bucket, contact cards, catch-up from contacts' nodes.
//   - bridge/mailtext: the header edits and notices on the mail path.
//
// # The mail path
//
// A message from a mail client to its recipient's INBOX crosses one
// package a step; to follow it, open each in turn:
//
//  1. SMTP DATA: bridge/smtpserver, session.Data, hands the message to
//     the Queue once it is whole.
//  2. Outbox: bridge/outbound, Queue.Submit, checks the recipients and
//     writes one outbox entry each with mailstore's DB.Enqueue (durable
//     before the client's 250).
//  3. Sealing: bridge/outbound, Worker.attempt then Worker.publish, splits
//     the message into chunks (asmtp/mail.Split) and seals each to the
//     recipient's shared key (sealAhead, asmtp/mail.SealChunk).
//  4. Node publish: asmtp/node, Session.PublishBatch, returns once the
//     sender's node has stored the chunks.
//  5. Relay: asmtp/node, Node.relay, stores and forwards them to the
//     peers on the topic by PolderCast's rule, until the recipient's
//     node has them.
//  6. Node store: asmtp/node/store, Store.AddMessages (called by
//     Node.storeLoop; a local publication by Store.AddMessagesDurable),
//     keeps them on the recipient's node, and Node.deliver pushes them
//     to the account's session.
//  7. Inbound: bridge/inbound, Worker.handle, opens each chunk, checks
//     that the contact sealed it, and reassembles the message
//     (Worker.holdChunk, Worker.assemble).
//  8. Mailstore: mailstore, DB.AppendInbound, appends it to INBOX with
//     the header mailtext.InboundCopy writes, once per message id.
//  9. IMAP: bridge/imapserver, session.Idle tells the client, and
//     session.Fetch serves the message.
//
// # Changes while asmtpd runs
//
// asmtpd-cli writes the registry directly; the running Bridge notices
// within accounts.ChangePollInterval (accounts.Registry.Changes) and
// reconciles (presence.Roster.Reconcile): new accounts become node users
// with their passport uploaded, new contacts' topics are registered (the
// node then fetches what they already sent from other nodes), retired
// topics deregistered (those a contact's key rotation replaced only after
// RotationGrace; see package inbound).
package bridge
