// Package naming is the user side of naming v2 (PROTOCOL.md §16) for the
// bridge's accounts. Each account receives on its daily inbox topics,
// derived from a secret seed that only its contacts learn, inside their
// cards; first contact goes through the recipient's intro bucket. The
// account's node subscribes to the inbox of today (and the neighbouring
// day near midnight) and to the account's intro bucket, and to no
// passport topic and no pair topic of a v2 contact.
//
// Adding a contact sends the account's card to the contact's bucket; mail
// to the contact waits in the outbox (bridge/outbound) until the contact's
// card comes back, then goes to the contact's inbox of the day, to the
// contact's node first. A contact that sends no card within CardWait
// becomes a v1 contact (the pair topic, as before), shown as "v1".
//
// On start, the account's inboxes of the last CatchUpDays days are
// subscribed again and caught up from each v2 contact's node: the sender's
// node is the one that holds mail for an inbox while its owner is away
// (§16.6).
package naming
