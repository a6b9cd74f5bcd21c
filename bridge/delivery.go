package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/mailstore"
)

// Mail delivery: how mail goes out of and comes into the bridge.
//
// # Outbound
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
// added if the client gave none; To and Cc are kept.
//
// The delivery worker takes due entries, at most DeliveryConfig.Workers at
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
//
// # Inbound
//
// Each account's node session pushes what arrives on its registered
// topics; an inbound worker per account (inbound.go) takes every content:
// the contact the topic belongs to; Noise X open with the account's shared
// secret, and the sender key checked against that contact's shared key
// (anything else is dropped and logged with topic and keys, never
// content); the chunk held in memory until its message is complete, or
// after a few seconds (heldFlushAfter) put in the reassembly buffer
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
// for RotationGrace (7 days): it stays registered (again at each start),
// the worker reads it like a contact's topic, and content on it is taken
// when sealed by the contact's old shared key, kept with the topic in the
// registry's retired_topics, and delivered as mail from that contact
// (same From and X-ASMTP-Sender). Content on it sealed by any other key,
// the new one included, is dropped. Once the grace period is over the
// bridge deregisters the topic and forgets it (looked for every
// Config.RefreshInterval); a removed contact's topics, old ones included,
// are deregistered at once.
//
// Incomplete messages dropped after ReassemblyTimeout, or to stay within
// the limits, are logged, and a notice saying how many parts came is put in
// INBOX, so no message disappears without a word.

// Defaults of DeliveryConfig.
const (
	DefaultRetryWindow = 4 * 24 * time.Hour
	// DefaultDelayWarning is when the sender of mail still undelivered
	// is told so, as Postfix's delay_warning_time is usually set.
	DefaultDelayWarning = 4 * time.Hour
	DefaultFirstRetry   = 30 * time.Second
	DefaultMaxRetry     = time.Hour
	DefaultWorkers      = 4
	// DefaultLookupInterval spaces the passport look-ups of unknown
	// recipients: at most 2 a second stays below the request rate peers
	// allow by default (node.DefaultQueryRate, 5 a second, which also
	// covers the node's own catch-up queries), over which they quarantine
	// the node.
	DefaultLookupInterval = 500 * time.Millisecond
	DefaultReplayMemory   = 100000 // delivered message ids remembered per account
	// DefaultMaxPendingBytes is the chunk data held for incomplete
	// messages per account: two messages of the largest size.
	DefaultMaxPendingBytes = 2 * MaxMessageSize
)

// deliveryBatch is how many outbox entries one pass of the worker reads.
const deliveryBatch = 64

// notLinkedWait postpones mail of an account that is not on the node yet
// (at start, before the Bridge has attached it), without counting an
// attempt.
const notLinkedWait = time.Second

// errNotLinked: the account has no node session yet.
var errNotLinked = errors.New("the account is not on the node yet")

// errNoHolder: the node has stored the message, but no other holder of
// the recipient's topic (their node, or their account on this one) has
// been seen, so it has not left this node yet.
var errNoHolder = errors.New("stored on the sender's node; no node holding the recipient's topic seen yet")

// expireInterval is how often incomplete inbound messages are checked for
// the reassembly timeout (and the replay memory trimmed), or a quarter of
// the timeout if that is shorter.
const expireInterval = time.Minute

// DeliveryConfig tunes mail delivery. Zero values mean the defaults.
type DeliveryConfig struct {
	// RetryWindow is how long a message is retried before it bounces.
	// Default DefaultRetryWindow.
	RetryWindow time.Duration
	// DelayWarning is how long after submission a message still in the
	// outbox gets the sender a delay report (RFC 3464 Action: delayed) in
	// INBOX, once. One at or past RetryWindow sends none. Default
	// DefaultDelayWarning.
	DelayWarning time.Duration
	// FirstRetry is the wait after the first failed attempt; it doubles
	// with each further failure up to MaxRetry. Defaults DefaultFirstRetry
	// and DefaultMaxRetry.
	FirstRetry time.Duration
	MaxRetry   time.Duration
	// Workers bounds deliveries in progress at once. Default
	// DefaultWorkers.
	Workers int
	// LookupInterval is the least time between two passport look-ups on
	// the network. Default DefaultLookupInterval.
	LookupInterval time.Duration
	// ReassemblyTimeout drops an incomplete inbound message that got no
	// chunk for this long. Default asmtp/mail.DefaultTimeout (24 h).
	ReassemblyTimeout time.Duration
	// MaxPendingMessages and MaxPendingBytes bound the incomplete inbound
	// messages held per account. Defaults asmtp/mail.DefaultMaxPending
	// and DefaultMaxPendingBytes.
	MaxPendingMessages int
	MaxPendingBytes    int64
	// ReplayMemory is how many delivered message ids are remembered per
	// account, to ignore replays. Default DefaultReplayMemory.
	ReplayMemory int

	// hook, in tests, is called at stages of a delivery attempt.
	hook func(stage string, it mailstore.OutboxItem, chunk int)
}

func (c *DeliveryConfig) setDefaults() {
	if c.RetryWindow <= 0 {
		c.RetryWindow = DefaultRetryWindow
	}
	if c.DelayWarning <= 0 {
		c.DelayWarning = DefaultDelayWarning
	}
	if c.FirstRetry <= 0 {
		c.FirstRetry = DefaultFirstRetry
	}
	if c.MaxRetry <= 0 {
		c.MaxRetry = DefaultMaxRetry
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.LookupInterval <= 0 {
		c.LookupInterval = DefaultLookupInterval
	}
	if c.ReassemblyTimeout <= 0 {
		c.ReassemblyTimeout = mail.DefaultTimeout
	}
	if c.MaxPendingMessages <= 0 {
		c.MaxPendingMessages = mail.DefaultMaxPending
	}
	if c.MaxPendingBytes < mail.ChunkDataSize {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if c.ReplayMemory <= 0 {
		c.ReplayMemory = DefaultReplayMemory
	}
}

// backoff is the wait after attempts failed attempts.
func (c *DeliveryConfig) backoff(attempts int) time.Duration {
	if attempts >= 30 {
		return c.MaxRetry
	}
	return min(c.MaxRetry, c.FirstRetry<<attempts)
}

// deliverer is the outbound delivery worker.
type deliverer struct {
	b      *Bridge
	cfg    DeliveryConfig
	wakeCh chan struct{}
	// memory bounds the queued messages held at once by the workers.
	memory *mailstore.MemoryBudget

	mu         sync.Mutex
	nextLookup time.Time               // when the next passport look-up may start
	secrets    map[string]cachedSecret // by account
	handed     map[outboxKey]handover  // entries with chunks the node has and the outbox does not record
}

// outboxKey names an outbox entry: one recipient of one queued message.
type outboxKey struct {
	id       int64
	passport passport.Hash
}

func keyOf(it mailstore.OutboxItem) outboxKey { return outboxKey{it.OutboxID, it.Passport} }

// handover is how many leading chunks of an entry's message this process
// has published on topic. The next attempt publishes only the rest (none
// when all were), so an outbox that fails to record a delivery does not
// make the node store and forward fresh copies (each seal is new
// randomness, so the node cannot tell them for duplicates). It lives in
// memory: the outbox records a handover (HandedAt) only when the mail
// then waits for a holder of the topic. A crash between publishing and
// recording has the message published again after the restart, which the
// recipient drops as a replay of its message id.
type handover struct {
	topic  topic.Topic
	chunks int
}

// cachedSecret is an account's shared secret, kept because opening it
// (Registry.Secrets: a passport import and several key derivations) would
// otherwise take a good part of the time a small mail takes. It is the
// secret of the passport blocks kept with it: a rotation changes them.
type cachedSecret struct {
	blocks []byte
	secret keys.SharedSecret
}

// outboxMemory bounds the bytes of queued messages the workers hold at
// once: two of the largest, so that eight 25 MiB messages are not all in
// memory (with their sealed chunks) at the same time.
const outboxMemory = MaxMessageSize

func newDeliverer(b *Bridge) *deliverer {
	return &deliverer{b: b, cfg: b.cfg.Delivery, wakeCh: make(chan struct{}, 1), secrets: make(map[string]cachedSecret),
		handed: make(map[outboxKey]handover), memory: mailstore.NewMemoryBudget(outboxMemory, mailstore.DefaultBudgetWait)}
}

// wake makes the worker look at the outbox now.
func (d *deliverer) wake() {
	select {
	case d.wakeCh <- struct{}{}:
	default:
	}
}

// run delivers what is due until ctx is done: at start, when woken, and
// when the next entry falls due. A pass that could not update the outbox
// leaves entries due in the past; the next pass then waits FirstRetry,
// doubling up to MaxRetry while passes keep failing, rather than at once:
// a failing store must not make the worker spin.
func (d *deliverer) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	stalled := 0 // passes in a row that could not update the outbox
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wakeCh:
		case <-timer.C:
		}
		if d.pass(ctx) {
			stalled = 0
		} else {
			stalled++
		}
		timer.Reset(d.nextPass(ctx, stalled))
	}
}

// nextPass is how long to wait before the next pass, after stalled passes
// in a row that could not update the outbox.
func (d *deliverer) nextPass(ctx context.Context, stalled int) time.Duration {
	if stalled > 0 {
		wait := d.cfg.backoff(stalled - 1)
		d.b.log.Warn("bridge: the outbox cannot be updated; next pass later", "wait", wait, "passes", stalled)
		return wait
	}
	wait := d.cfg.MaxRetry
	if next, ok, err := d.b.mail.NextDelivery(ctx); err != nil {
		d.b.log.Error("bridge: read the outbox", "err", err)
	} else if ok {
		wait = min(wait, max(0, time.Until(next)))
	}
	return wait
}

// pass attempts every due entry, Workers at a time, until none is due. It
// reports false when it stopped because the outbox could not be read or
// updated, with entries still due.
func (d *deliverer) pass(ctx context.Context) bool {
	for ctx.Err() == nil {
		due, err := d.b.mail.DueDeliveries(ctx, time.Now(), deliveryBatch)
		if err != nil {
			d.b.log.Error("bridge: read the outbox", "err", err)
			return false
		}
		if len(due) == 0 {
			return true
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, d.cfg.Workers) // d.memory bounds the bytes
		progress := make(chan bool, len(due))
		for _, it := range due {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				raw, release, err := d.b.mail.OutboxMessageHeld(ctx, d.memory, it.OutboxID)
				if err == nil {
					defer release()
				}
				if err != nil && ctx.Err() == nil {
					// Counted as a failed attempt, so that it bounces at the
					// deadline like any other.
					d.b.log.Error("bridge: read a queued message", "outbox", it.OutboxID, "err", err)
					progress <- d.finish(ctx, it, nil, 0, err)
					return
				}
				progress <- d.deliver(ctx, it, raw)
			}()
		}
		wg.Wait()
		close(progress)
		moved := false
		for p := range progress {
			moved = moved || p
		}
		if !moved { // the outbox cannot be updated: try again later
			return ctx.Err() != nil
		}
	}
	return true
}

// deliver makes one attempt and records its outcome; it reports whether
// the outbox was updated.
func (d *deliverer) deliver(ctx context.Context, it mailstore.OutboxItem, raw []byte) bool {
	chunks, cause := d.attempt(ctx, it, raw)
	return d.finish(ctx, it, raw, chunks, cause)
}

// finish records the outcome of an attempt that left chunks on the node
// and failed with cause (nil: delivered), and reports whether the outbox
// was updated.
func (d *deliverer) finish(ctx context.Context, it mailstore.OutboxItem, raw []byte, chunks int, cause error) bool {
	if cause != nil && ctx.Err() != nil {
		return false // interrupted by shutdown: the entry stays due
	}
	ctx = context.WithoutCancel(ctx) // record what was done, also when stopping
	left, err := d.record(ctx, it, raw, chunks, cause)
	switch {
	case errors.Is(err, mailstore.ErrNotQueued): // gone meanwhile: its account was removed
		left, err = true, nil
	case err != nil:
		d.b.log.Error("bridge: update the outbox", "account", it.Account, "to", it.Address, "outbox", it.OutboxID, "err", err)
		d.hook("unrecorded", it, chunks)
		return false
	}
	if left {
		d.forgetHandover(it)
	} else {
		d.warnIfLate(ctx, it, raw, cause)
	}
	return true
}

// warnIfLate tells the sender, once, that the entry is still undelivered
// DelayWarning after submission (and not yet bounced).
func (d *deliverer) warnIfLate(ctx context.Context, it mailstore.OutboxItem, raw []byte, cause error) {
	now := time.Now()
	if !it.WarnedAt.IsZero() || now.Before(it.QueuedAt.Add(d.cfg.DelayWarning)) || !now.Before(it.QueuedAt.Add(d.cfg.RetryWindow)) {
		return
	}
	log := d.b.log.With("account", it.Account, "to", it.Address, "outbox", it.OutboxID)
	_, err := d.b.mail.DeliveryDelayed(ctx, it, d.b.delayed(ctx, it, raw, cause, now), now)
	switch {
	case errors.Is(err, mailstore.ErrNotQueued): // warned or gone meanwhile
	case err != nil:
		log.Error("bridge: store a delay report", "err", err) // tried again at the next attempt
	default:
		log.Warn("bridge: mail delayed; the sender was told", "queued", it.QueuedAt, "err", cause)
	}
}

// record writes the outcome of an attempt that published chunks and
// failed with cause (nil: delivered) to the outbox, and reports whether
// the entry left it. The deadline comes before any other failure, so that
// every accepted mail ends delivered or bounced, whatever kept it from the
// node.
func (d *deliverer) record(ctx context.Context, it mailstore.OutboxItem, raw []byte, chunks int, cause error) (left bool, err error) {
	log := d.b.log.With("account", it.Account, "to", it.Address, "outbox", it.OutboxID)
	now := time.Now()
	deadline := it.QueuedAt.Add(d.cfg.RetryWindow)
	next := now.Add(d.cfg.backoff(it.Attempts))
	if errors.Is(cause, errNotLinked) {
		next = now.Add(notLinkedWait)
	}
	if next.After(deadline) {
		next = deadline
	}
	// The delay report goes out on time, whatever the back-off.
	if warnAt := it.QueuedAt.Add(d.cfg.DelayWarning); it.WarnedAt.IsZero() && warnAt.After(now) && next.After(warnAt) {
		next = warnAt
	}
	switch {
	case cause == nil:
		log.Info("bridge: mail sent", "chunks", chunks, "bytes", len(raw), "attempt", it.Attempts+1)
		return true, d.b.mail.DeliverySucceeded(ctx, it)
	case !now.Before(deadline):
		log.Warn("bridge: mail bounced", "attempts", it.Attempts+1, "err", cause)
		_, err := d.b.mail.DeliveryFailed(ctx, it, d.b.bounce(ctx, it, raw, cause, now), now)
		return true, err
	case errors.Is(cause, errNotLinked):
		return false, d.b.mail.DeliveryPostponed(ctx, it, next)
	case errors.Is(cause, errNoHolder):
		log.Info("bridge: mail on the node, waiting for the recipient's", "chunks", chunks, "attempt", it.Attempts+1,
			"check", next.Sub(now).Round(time.Millisecond))
		return false, d.b.mail.DeliveryHanded(ctx, it, now, next, cause.Error())
	default:
		log.Info("bridge: mail deferred", "attempt", it.Attempts+1, "retry", next.Sub(now).Round(time.Millisecond), "err", cause)
		return false, d.b.mail.DeliveryDeferred(ctx, it, next, cause.Error())
	}
}

// handedChunks is how many leading chunks of the entry's message this
// process has published on t.
func (d *deliverer) handedChunks(it mailstore.OutboxItem, t topic.Topic) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.handed[keyOf(it)]; ok && h.topic == t {
		return h.chunks
	}
	return 0
}

// handOver records that the node has the first chunks of the entry's
// message on t.
func (d *deliverer) handOver(it mailstore.OutboxItem, t topic.Topic, chunks int) {
	d.mu.Lock()
	d.handed[keyOf(it)] = handover{topic: t, chunks: chunks}
	d.mu.Unlock()
}

// forgetHandover drops the record of an entry that left the outbox.
func (d *deliverer) forgetHandover(it mailstore.OutboxItem) {
	d.mu.Lock()
	delete(d.handed, keyOf(it))
	d.mu.Unlock()
}

// attempt sends raw to the entry's recipient and returns the number of
// chunks the node has. It fails with errNoHolder when the node has them
// all (now or, HandedAt set, before) but no other holder of the topic is
// known yet: the node keeps them for one to appear and catch up.
func (d *deliverer) attempt(ctx context.Context, it mailstore.OutboxItem, raw []byte) (int, error) {
	s := d.b.session(it.Account)
	if s == nil {
		return 0, errNotLinked
	}
	d.hook("start", it, 0)
	acct, err := d.b.reg.Account(ctx, it.Account)
	if err != nil {
		return 0, err
	}
	if it.Passport == acct.Passport {
		return 1, d.deliverToSelf(ctx, acct, it, raw)
	}
	c, err := d.contact(ctx, s, it)
	if err != nil {
		return 0, err
	}
	chunks := 0
	if it.HandedAt.IsZero() {
		if chunks, err = d.handOverAll(ctx, s, acct, it, c, raw); err != nil {
			return chunks, err
		}
	}
	if s.Holders(c.Topic, 1) == 0 {
		return chunks, errNoHolder
	}
	return chunks, nil
}

// handOverAll publishes the chunks of raw the node does not have yet on
// the contact's topic, and returns how many chunks the node has.
func (d *deliverer) handOverAll(ctx context.Context, s *node.Session, acct Account, it mailstore.OutboxItem, c Contact, raw []byte) (int, error) {
	secret, err := d.sharedSecret(ctx, acct)
	if err != nil {
		return 0, err
	}
	// Registering (idempotent) makes the node keep what is published, so
	// the recipient's node can fetch it later.
	if err := s.Register(ctx, c.Topic); err != nil {
		return 0, err
	}
	chunks, err := mail.Split(mail.MessageID(it.MessageID), mail.KindMail, raw)
	if err != nil {
		return 0, err
	}
	if err := d.publish(ctx, s, it, c, secret, chunks); err != nil {
		return d.handedChunks(it, c.Topic), err
	}
	d.hook("sent", it, len(chunks))
	return len(chunks), nil
}

// publish seals and publishes the chunks the node does not have yet
// (handedChunks), in batches, recording each batch the node stored.
func (d *deliverer) publish(ctx context.Context, s *node.Session, it mailstore.OutboxItem, c Contact, secret keys.SharedSecret, chunks []mail.Chunk) error {
	from := d.handedChunks(it, c.Topic)
	if from >= len(chunks) {
		return nil
	}
	sealed := sealAhead(secret, c.SharedKey, chunks[from:])
	defer sealed.stop()
	batch := make([][]byte, 0, publishBatchChunks)
	for i := from; i < len(chunks); i++ {
		content, err := sealed.next()
		if err != nil {
			return err
		}
		if batch = append(batch, content); len(batch) < publishBatchChunks && i < len(chunks)-1 {
			continue
		}
		if err := s.PublishBatch(ctx, c.Topic, batch); err != nil {
			return fmt.Errorf("publish chunks %d-%d of %d: %w", i+2-len(batch), i+1, len(chunks), err)
		}
		d.handOver(it, c.Topic, i+1)
		batch = batch[:0]
		d.hook("published", it, i+1)
	}
	return nil
}

// publishBatchChunks is how many chunks one node commit stores: a batch
// costs one fsync instead of one per chunk, and small batches keep the
// recipient working on the first chunks while the next are stored.
const publishBatchChunks = 4

// chunkSealer seals the chunks of a message ahead of their publication: a
// Noise X seal costs four X25519 operations, and Publish waits for the
// node's fsync, so sealing the next chunks on other goroutines meanwhile
// takes most of the sealing off a large message's delivery time.
type chunkSealer struct {
	results []chan sealedChunk // one per chunk, buffered: a seal never waits for its reader
	slots   chan struct{}      // bounds the chunks sealed and not yet taken
	done    chan struct{}
	i       int
}

type sealedChunk struct {
	content []byte
	err     error
}

// sealAhead starts sealing chunks, in order; at most sealAheadChunks() are
// sealed or being sealed and not yet taken by next. stop must be called.
func sealAhead(secret keys.SharedSecret, to keys.SharedKey, chunks []mail.Chunk) *chunkSealer {
	cs := &chunkSealer{results: make([]chan sealedChunk, len(chunks)), slots: make(chan struct{}, sealAheadChunks()), done: make(chan struct{})}
	for i := range cs.results {
		cs.results[i] = make(chan sealedChunk, 1)
	}
	go func() {
		for i, ch := range chunks {
			select {
			case cs.slots <- struct{}{}:
			case <-cs.done:
				return
			}
			go func() {
				content, err := mail.SealChunk(rand.Reader, secret, to, ch)
				cs.results[i] <- sealedChunk{content, err}
			}()
		}
	}()
	return cs
}

// sealAheadChunks is how many chunks are sealed at once: one per CPU, and
// at least two so that one is ready when the previous is published.
func sealAheadChunks() int { return max(2, runtime.GOMAXPROCS(0)) }

// next returns the next chunk sealed, in order.
func (cs *chunkSealer) next() ([]byte, error) {
	r := <-cs.results[cs.i]
	cs.i++
	<-cs.slots
	return r.content, r.err
}

// stop ends the sealing of chunks not started yet; those started finish
// into their buffered channels and are dropped.
func (cs *chunkSealer) stop() { close(cs.done) }

// sharedSecret is the shared secret of account a, as read with it.
func (d *deliverer) sharedSecret(ctx context.Context, a Account) (keys.SharedSecret, error) {
	d.mu.Lock()
	c, ok := d.secrets[a.Name]
	d.mu.Unlock()
	if ok && bytes.Equal(c.blocks, a.Blocks) {
		return c.secret, nil
	}
	s, err := d.b.reg.Secrets(ctx, d.b.nodeKey, a.Name)
	if err != nil {
		return keys.SharedSecret{}, err
	}
	d.mu.Lock()
	d.secrets[a.Name] = cachedSecret{blocks: bytes.Clone(a.Blocks), secret: s.SharedSecret}
	d.mu.Unlock()
	return s.SharedSecret, nil
}

func (d *deliverer) hook(stage string, it mailstore.OutboxItem, chunk int) {
	if d.cfg.hook != nil {
		d.cfg.hook(stage, it, chunk)
	}
}

// contact is the recipient's contact with its passport. A passport id not
// in the address book (or still pending there) is looked up on the network
// and the result kept in the address book, under the id as petname.
func (d *deliverer) contact(ctx context.Context, s *node.Session, it mailstore.OutboxItem) (Contact, error) {
	id := passport.Hash(it.Passport)
	c, err := d.b.reg.Contact(ctx, it.Account, id)
	switch {
	case err == nil && !c.Pending():
		return c, nil
	case err != nil && !errors.Is(err, ErrNoContact):
		return c, err
	}
	pending := err == nil
	if err := d.paceLookup(ctx); err != nil {
		return c, err
	}
	blocks, err := s.GetPassport(ctx, id)
	if err != nil {
		return c, fmt.Errorf("%w: %s: %v", errUnknownPassport, id, err)
	}
	if pending {
		c, _, err = d.b.reg.UpdateContactPassport(ctx, it.Account, id, blocks)
	} else {
		c, err = d.b.reg.AddContact(ctx, it.Account, id.String(), blocks)
		if errors.Is(err, ErrContactExists) { // added meanwhile
			c, err = d.b.reg.Contact(ctx, it.Account, id)
		}
	}
	if err != nil {
		return c, err
	}
	if c.Pending() {
		return c, fmt.Errorf("%w: %s", errUnknownPassport, id)
	}
	d.b.log.Info("bridge: contact added from the network", "account", it.Account, "passport", id)
	return c, nil
}

// paceLookup waits until a passport look-up may start (LookupInterval).
func (d *deliverer) paceLookup(ctx context.Context) error {
	d.mu.Lock()
	now := time.Now()
	start := now
	if d.nextLookup.After(now) {
		start = d.nextLookup
	}
	d.nextLookup = start.Add(d.cfg.LookupInterval)
	d.mu.Unlock()
	if start.Equal(now) {
		return nil
	}
	t := time.NewTimer(start.Sub(now))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deliverToSelf puts mail to the account's own address in its INBOX, as
// mail from itself (the node does not push a session its own
// publications).
func (d *deliverer) deliverToSelf(ctx context.Context, a Account, it mailstore.OutboxItem, raw []byte) error {
	p, err := passport.Import(a.Blocks, time.Now())
	if err != nil {
		return err
	}
	key, ok := p.SharedKey()
	if !ok {
		return passport.ErrNoSharedKey
	}
	self := Contact{Account: a.Name, Name: a.Name, Passport: a.Passport}
	head, body := splitHead(raw)
	_, _, err = d.b.mail.DeliverInbound(ctx, a.Name, key, it.MessageID, inboundCopy(head, self, d.b.cfg.Domain), body, time.Now())
	return err
}

// session is the account's node session, or nil before it is attached.
func (b *Bridge) session(account string) *node.Session {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l := b.links[account]; l != nil {
		return l.session
	}
	return nil
}
