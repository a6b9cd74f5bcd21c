// Package accounts is the bridge's record of who uses it: the accounts
// (local identities with their keys, passports and bridge passwords),
// their pseudo-addresses, and their address books (contacts, with the
// cards CardDAV clients put). It is the Registry (one SQLite file), the
// Authenticator the IMAP, SMTP and CardDAV servers check logins with, and
// the AddressBook the CardDAV server serves. It knows nothing of the
// network: package bridge keeps the node in step with the registry, and
// bridge/outbound and bridge/inbound read keys and contacts from it.
//
// # Files
//
// Everything lives in a data directory of its own, by default "bridge"
// beside the node database (DefaultDataDir): the Registry (bridge.db:
// accounts and contacts) and the mailstore (mail.db). The directory is
// kept at mode 0700 and the files at 0600 (their WAL files inherit the
// mode), whatever the directory of the node's files allows. Both are
// SQLite in WAL mode with synchronous=FULL; asmtpd and asmtpd-cli use them
// at the same time.
//
// # Accounts
//
// An account is a local identity: a fresh Ed25519 device key, which the
// bridge makes a user of the node, and a passport created for it whose
// shared secret is sealed to the device key under a random 32-byte
// passport seed. The alias in the passport is "bridge", not the account
// name, because passports are public.
//
// Creating an account makes the keys and passport in memory, then the
// account's mailboxes (mailstore.CreateAccount), then commits the
// account row in one transaction. The account exists once the row commits
// and not before: a crash leaves no account, at worst mailboxes that
// belong to none and are taken over when the name is added again.
//
// # Secrets at rest
//
// The device seed and the passport seed are sealed with
// XChaCha20-Poly1305 under a key derived from the node's Ed25519 seed by
// HKDF-SHA512 (info "asmtp bridge secrets v1"); the additional data names
// the account and the field, so sealed values cannot be moved between
// rows or columns. The node key already costs a slow KDF of the key
// password, so there is no second password and no second slow KDF. Since
// a wrong key password silently derives another node key, the registry
// records the id of the node key that sealed its secrets and reports a
// mismatch as ErrWrongNodeKey ("wrong key password or different node
// key"), before anything is written.
//
// The shared secret itself is not stored: Secrets unseals it from the
// account's passport with the device key and the passport seed, so it
// always matches the passport's current shared key, and keeping the
// passport seed is what later allows the shared key to be rotated.
//
// Only creating an account needs the node key. Listing accounts,
// exporting passports, resetting bridge passwords and editing address
// books read and write nothing secret, so they do not ask for the key
// password.
//
// # Bridge passwords
//
// Mail clients log in with the account name or its pseudo-address (any
// case) and the bridge password. A generated password is a 128-bit random
// token, 26 lower-case base32 characters, kept as a salted keyed BLAKE2b
// hash: it cannot be guessed, so it needs no slow hash. A password the
// owner chose may be weak and is kept as Argon2id. Each stored hash names
// its scheme (password.go); comparisons are constant time. Every login
// nevertheless costs one Argon2id evaluation (a token's check is followed by
// one on a dummy hash, and so is an unknown name's), so that the time of an
// answer does not tell which accounts exist or how their passwords are
// kept. IMAP and SMTP share one Authenticator and its loginlimit.Limiter:
// a few password checks at a time, and guesses at an account or from a
// source spaced out, by delay rather than lock-out.
//
// # Pseudo-addresses and the address book
//
// Every passport has the address "<32-hex passport id>@<domain>"
// (Address; domain "asmtp" unless configured), parsed case-insensitively
// within RFC 5321's limits. The only display name shown for an address is
// the petname the account's owner gave the contact (Contact.MailAddress);
// names written by senders are never trusted.
//
// A contact added from its passport file is checked and its topic,
// topic.Derive of the two shared keys, derived at once. A contact added by
// passport id is pending until the bridge fetches its passport through the
// node. Passport updates the node receives on a contact's passport topic
// are followed: a copy that extends the stored one replaces it (a stale or
// forked copy cannot roll the shared key back), and a new shared key gives
// a new topic. Topics no longer needed (removed contacts, replaced keys)
// are queued in the registry and deregistered by the bridge, so a removal
// made while asmtpd is down is still applied. An account holds at most
// MaxContacts contacts, MaxPendingContacts of them pending (each is looked
// for on the network every bridge.Config.RefreshInterval).
//
// Mail clients see and edit the address book over CardDAV (package
// carddav, on bridge.Config.CardDAVAddr, with the IMAP/SMTP logins): a card put
// with an ASMTP address adds a pending contact, a new name renames it, a
// deleted card removes it. Clients notice changes by the book's CTag and
// the cards' ETags (hashes of the cards' text); go-webdav v0.6.0 has no
// sync-collection.
//
// # Changes by other processes
//
// asmtpd-cli writes the registry directly while asmtpd runs; Changes
// tells the running bridge within ChangePollInterval (it polls SQLite's
// PRAGMA data_version, which moves when another connection commits).
// Polling was chosen over a control socket: it needs no protocol, works
// the same whether or not the daemon runs, and leaves nothing to clean up
// after a crash; the daemon re-reads everything at start anyway.
package accounts
