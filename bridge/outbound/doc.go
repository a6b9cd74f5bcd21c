// Package outbound takes mail from the submission server to the node:
// the Queue behind bridge/smtpserver puts it in the outbox (mailstore),
// and the Worker seals it to each recipient and publishes it on the
// account's node session (asmtp/node), then bounces it or warns the
// sender when it cannot leave.
//
// # Submission
//
// A client submits over SMTP (bridge/smtpserver; SIZE is MaxMessageSize,
// what the mail payload carries). Each RCPT TO must name a
// passport, "<passport id>@<domain>", or a contact by petname,
// "<petname>@<domain>"; anything else is refused at once with a 550 that
// says what to write instead. An id that is not in the address book is
// accepted: the delivery worker looks its passport up on the network. The
// message is then put in the outbox (mailstore, one transaction, fsync)
// with one entry per recipient, and only then does the client get its 250.
// The copy stored is the one every recipient gets: Bcc and Resent-Bcc
// removed (each recipient has an envelope of its own), Date and Message-ID
// added if the client gave none; To and Cc are kept. Only the header
// (at most mailtext.MaxHeadBytes; a larger one is refused with a 554) is
// read into memory to be edited: the body goes from the SMTP server's
// spool file into the outbox as it is read, in segments, so submissions
// of any size hold no more than a segment each.
//
// # Delivery
//
// The Worker takes due entries, at most Config.Workers at
// once. For each: the recipient's contact (an unknown id is fetched with
// GetPassport, at most one look-up per LookupInterval so that peers do not
// take the node for a flood, and added to the address book under its id as
// petname, so its replies can come back), the pair's topic (derived once, kept in the
// registry), registered for the account (so the node keeps what is
// published and other subscribers can fetch it later), then the message is
// split into chunks that each fit one Topic frame, every chunk padded to a
// size bucket and sealed with Noise X from the account's shared secret to
// the contact's shared key (asmtp/mail), and published: the node stores
// them durably before Publish returns, and its store-and-forward takes
// over. The entry leaves the outbox once every chunk is published and a
// node holding the pair's topic is known (node.Session.Holders: the
// recipient's node, or the recipient's account on this node): the node
// has then sent the chunks on to it, or it catches up on them.
//
// # What "sent" means, and what the sender is told
//
// The SMTP 250 means: the mail is in the outbox, durably. From there it
// ends delivered or bounced, and the sender hears of anything but a
// prompt delivery:
//
//   - delivered: published, and a holder of the topic seen. Nothing is
//     said; the recipient's node has it or will fetch it from this one.
//   - delayed: still in the outbox DelayWarning (bridge.delay_warning,
//     4 h by default, as Postfix's delay_warning_time) after submission,
//     because it could not be handed to the node (the recipient's
//     passport not found: their node is offline or the address is wrong;
//     the account not on the node), or because the node has it but no
//     holder of the topic has been seen (the recipient's node is offline,
//     or they have not added the sender as a contact: ASMTP carries mail
//     only between contacts). The sender gets one delay report in INBOX
//     (RFC 3464 Action: delayed, 4.x.x, Will-Retry-Until), and
//     asmtpd-cli status warns of it. This is a warning on the way, not an
//     end: retrying goes on.
//   - bounced: the same, still so when RetryWindow (bridge.retry_window,
//     4 days) has passed since submission; the deadline is checked before
//     anything else, so every accepted mail ends delivered or bounced. A
//     bounce (Action: failed) that says what failed is stored in the
//     sender's INBOX in the same transaction that removes the entry. When
//     the node had the mail, the bounce says that it keeps it for its
//     retention period (30 days by default), so it may still arrive if
//     the recipient's node comes back within it: a node cannot take back
//     what it has stored for the network.
//
// A failed attempt is retried after FirstRetry, doubling up to MaxRetry
// (brought forward to the delay warning when that comes first). Every
// attempt sends the message id drawn at submission, also after a crash
// or restart, so a recipient who already has the message (or some of its
// chunks) ignores the copies. Chunks the node has stored are not
// published again by this process (handover; each seal is fresh
// randomness, so the node could not tell the copies for duplicates), nor
// at all once the outbox records the mail handed (HandedAt), so a mail
// waiting for a holder costs a look-up per retry, not a publication. A
// pass of the worker that could not update the outbox (the store failing)
// waits FirstRetry, doubling up to MaxRetry, before the next: entries due
// in the past must not make it spin.
//
// Mail to the account's own address is put in its own INBOX, as inbound
// mail from itself. The envelope sender (MAIL FROM) is recorded but
// carries no authority: what the recipient trusts is the key that sealed
// the mail, which is the logged-in account's.
//
// # Sent copies
//
// The bridge never files a copy in Sent: mail clients APPEND their own copy
// there (Thunderbird, mutt and mbsync all do), so one of its own would be
// a duplicate. A client set not to keep sent mail has none.
package outbound
