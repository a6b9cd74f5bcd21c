package outbound

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/passport"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/mailtext"
	"github.com/asmtp/asmtp/mailstore"
)

// deliveryBatch is how many outbox entries one pass of the worker reads.
const deliveryBatch = 64

// notLinkedWait postpones mail of an account that is not on the node yet
// (at start, before the bridge has attached it), without counting an
// attempt.
const notLinkedWait = time.Second

// errNotLinked: the account has no node session yet.
var errNotLinked = errors.New("the account is not on the node yet")

// errNoHolder: the node has stored the message, but no other holder of
// the recipient's topic (their node, or their account on this one) has
// been seen, so it has not left this node yet.
var errNoHolder = errors.New("stored on the sender's node; no node holding the recipient's topic seen yet")

// Config configures a Worker.
type Config struct {
	Pacing
	// Domain of the pseudo-addresses, for the delivery status reports.
	Domain string
	// NodeKey unseals the accounts' shared secrets (accounts.Registry.Secrets).
	NodeKey ed25519.PrivateKey
	// NamingV1 sends every mail on the pair topic (naming v1); otherwise a
	// v2 contact's mail goes to its inbox (route.go).
	NamingV1 bool
	// Hook, when set, is called at stages of a delivery attempt ("start",
	// "published", "sent", "unrecorded"), with the chunks the node has: the
	// crash tests stop the process there.
	Hook func(stage string, it mailstore.OutboxItem, chunk int)
	// Logger receives the worker's logs. Default slog.Default().
	Logger *slog.Logger
}

// Worker is the outbound delivery worker: it takes due entries from the
// outbox and publishes them on the node, sealed to their recipients.
type Worker struct {
	cfg      Config
	log      *slog.Logger
	dir      Directory
	outbox   Outbox
	sessions Sessions
	wakeCh   chan struct{}
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
// once: one of the largest (which, with the segment it is read in, is
// more than the budget and so runs alone), so that eight 25 MiB messages
// are not all in memory (with their sealed chunks) at the same time.
const outboxMemory = MaxMessageSize

// NewWorker delivers what is queued in outbox, for the accounts in dir,
// through their node sessions. Run runs it.
func NewWorker(cfg Config, dir Directory, outbox Outbox, sessions Sessions) *Worker {
	cfg.SetDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Worker{cfg: cfg, log: log, dir: dir, outbox: outbox, sessions: sessions, wakeCh: make(chan struct{}, 1),
		secrets: make(map[string]cachedSecret), handed: make(map[outboxKey]handover),
		memory: mailstore.NewMemoryBudget(outboxMemory, mailstore.DefaultBudgetWait)}
}

// Wake makes the worker look at the outbox now.
func (w *Worker) Wake() {
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
}

// Run delivers what is due until ctx is done: at start, when woken, and
// when the next entry falls due. A pass that could not update the outbox
// leaves entries due in the past; the next pass then waits FirstRetry,
// doubling up to MaxRetry while passes keep failing, rather than at once:
// a failing store must not make the worker spin.
func (w *Worker) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	stalled := 0 // passes in a row that could not update the outbox
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wakeCh:
		case <-timer.C:
		}
		if w.pass(ctx) {
			stalled = 0
		} else {
			stalled++
		}
		timer.Reset(w.nextPass(ctx, stalled))
	}
}

// nextPass is how long to wait before the next pass, after stalled passes
// in a row that could not update the outbox.
func (w *Worker) nextPass(ctx context.Context, stalled int) time.Duration {
	if stalled > 0 {
		wait := w.cfg.backoff(stalled - 1)
		w.log.Warn("bridge: the outbox cannot be updated; next pass later", "wait", wait, "passes", stalled)
		return wait
	}
	wait := w.cfg.MaxRetry
	if next, ok, err := w.outbox.NextDelivery(ctx); err != nil {
		w.log.Error("bridge: read the outbox", "err", err)
	} else if ok {
		wait = min(wait, max(0, time.Until(next)))
	}
	return wait
}

// pass attempts every due entry, Workers at a time, until none is due. It
// reports false when it stopped because the outbox could not be read or
// updated, with entries still due.
func (w *Worker) pass(ctx context.Context) bool {
	for ctx.Err() == nil {
		due, err := w.outbox.DueDeliveries(ctx, time.Now(), deliveryBatch)
		if err != nil {
			w.log.Error("bridge: read the outbox", "err", err)
			return false
		}
		if len(due) == 0 {
			return true
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, w.cfg.Workers) // w.memory bounds the bytes
		progress := make(chan bool, len(due))
		for _, it := range due {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				raw, release, err := w.outbox.OutboxMessageHeld(ctx, w.memory, it.OutboxID)
				if err == nil {
					defer release()
				}
				if err != nil && ctx.Err() == nil {
					// Counted as a failed attempt, so that it bounces at the
					// deadline like any other.
					w.log.Error("bridge: read a queued message", "outbox", it.OutboxID, "err", err)
					progress <- w.finish(ctx, it, nil, 0, err)
					return
				}
				progress <- w.deliver(ctx, it, raw)
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
func (w *Worker) deliver(ctx context.Context, it mailstore.OutboxItem, raw []byte) bool {
	chunks, cause := w.attempt(ctx, it, raw)
	return w.finish(ctx, it, raw, chunks, cause)
}

// finish records the outcome of an attempt that left chunks on the node
// and failed with cause (nil: delivered), and reports whether the outbox
// was updated.
func (w *Worker) finish(ctx context.Context, it mailstore.OutboxItem, raw []byte, chunks int, cause error) bool {
	if cause != nil && ctx.Err() != nil {
		return false // interrupted by shutdown: the entry stays due
	}
	ctx = context.WithoutCancel(ctx) // record what was done, also when stopping
	left, err := w.record(ctx, it, raw, chunks, cause)
	switch {
	case errors.Is(err, mailstore.ErrNotQueued): // gone meanwhile: its account was removed
		left, err = true, nil
	case err != nil:
		w.log.Error("bridge: update the outbox", "account", it.Account, "to", it.Address, "outbox", it.OutboxID, "err", err)
		w.hook("unrecorded", it, chunks)
		return false
	}
	if left {
		w.forgetHandover(it)
	} else {
		w.warnIfLate(ctx, it, raw, cause)
	}
	return true
}

// warnIfLate tells the sender, once, that the entry is still undelivered
// DelayWarning after submission (and not yet bounced).
func (w *Worker) warnIfLate(ctx context.Context, it mailstore.OutboxItem, raw []byte, cause error) {
	now := time.Now()
	if !it.WarnedAt.IsZero() || now.Before(it.QueuedAt.Add(w.cfg.DelayWarning)) || !now.Before(it.QueuedAt.Add(w.cfg.RetryWindow)) {
		return
	}
	log := w.log.With("account", it.Account, "to", it.Address, "outbox", it.OutboxID)
	_, err := w.outbox.DeliveryDelayed(ctx, it, w.delayed(ctx, it, raw, cause, now), now)
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
func (w *Worker) record(ctx context.Context, it mailstore.OutboxItem, raw []byte, chunks int, cause error) (left bool, err error) {
	log := w.log.With("account", it.Account, "to", it.Address, "outbox", it.OutboxID)
	now := time.Now()
	deadline := it.QueuedAt.Add(w.cfg.RetryWindow)
	next := now.Add(w.cfg.backoff(it.Attempts))
	switch {
	case errors.Is(cause, errNotLinked):
		next = now.Add(notLinkedWait)
	case errors.Is(cause, errAwaitingCard):
		next = now.Add(awaitingCardWait)
	}
	if next.After(deadline) {
		next = deadline
	}
	// The delay report goes out on time, whatever the back-off.
	if warnAt := it.QueuedAt.Add(w.cfg.DelayWarning); it.WarnedAt.IsZero() && warnAt.After(now) && next.After(warnAt) {
		next = warnAt
	}
	switch {
	case cause == nil:
		log.Info("bridge: mail sent", "chunks", chunks, "bytes", len(raw), "attempt", it.Attempts+1)
		return true, w.outbox.DeliverySucceeded(ctx, it)
	case !now.Before(deadline):
		log.Warn("bridge: mail bounced", "attempts", it.Attempts+1, "err", cause)
		_, err := w.outbox.DeliveryFailed(ctx, it, w.bounce(ctx, it, raw, cause, now), now)
		return true, err
	case errors.Is(cause, errNotLinked), errors.Is(cause, errAwaitingCard):
		return false, w.outbox.DeliveryPostponed(ctx, it, next)
	case errors.Is(cause, errNoHolder):
		log.Info("bridge: mail on the node, waiting for the recipient's", "chunks", chunks, "attempt", it.Attempts+1,
			"check", next.Sub(now).Round(time.Millisecond))
		return false, w.outbox.DeliveryHanded(ctx, it, now, next, cause.Error())
	default:
		log.Info("bridge: mail deferred", "attempt", it.Attempts+1, "retry", next.Sub(now).Round(time.Millisecond), "err", cause)
		return false, w.outbox.DeliveryDeferred(ctx, it, next, cause.Error())
	}
}

// handedChunks is how many leading chunks of the entry's message this
// process has published on t.
func (w *Worker) handedChunks(it mailstore.OutboxItem, t topic.Topic) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if h, ok := w.handed[keyOf(it)]; ok && h.topic == t {
		return h.chunks
	}
	return 0
}

// handOver records that the node has the first chunks of the entry's
// message on t.
func (w *Worker) handOver(it mailstore.OutboxItem, t topic.Topic, chunks int) {
	w.mu.Lock()
	w.handed[keyOf(it)] = handover{topic: t, chunks: chunks}
	w.mu.Unlock()
}

// forgetHandover drops the record of an entry that left the outbox.
func (w *Worker) forgetHandover(it mailstore.OutboxItem) {
	w.mu.Lock()
	delete(w.handed, keyOf(it))
	w.mu.Unlock()
}

// attempt sends raw to the entry's recipient and returns the number of
// chunks the node has. It fails with errNoHolder when the node has them
// all (now or, HandedAt set, before) but no other holder of the topic is
// known yet: the node keeps them for one to appear and catch up.
func (w *Worker) attempt(ctx context.Context, it mailstore.OutboxItem, raw []byte) (int, error) {
	s := w.sessions.Publisher(it.Account)
	if s == nil {
		return 0, errNotLinked
	}
	w.hook("start", it, 0)
	acct, err := w.dir.Account(ctx, it.Account)
	if err != nil {
		return 0, err
	}
	if it.Passport == acct.Passport {
		return 1, w.deliverToSelf(ctx, acct, it, raw)
	}
	c, err := w.contact(ctx, s, it)
	if err != nil {
		return 0, err
	}
	r, err := w.route(ctx, it, c)
	if err != nil {
		return 0, err
	}
	chunks := 0
	if it.HandedAt.IsZero() {
		if chunks, err = w.handOverAll(ctx, s, acct, it, c, r, raw); err != nil {
			return chunks, err
		}
	}
	if s.Holders(r.topic, 1) == 0 {
		return chunks, errNoHolder
	}
	return chunks, nil
}

// handOverAll publishes the chunks of raw the node does not have yet on
// the route's topic, and returns how many chunks the node has.
func (w *Worker) handOverAll(ctx context.Context, s Publisher, acct accounts.Account, it mailstore.OutboxItem, c accounts.Contact, r route, raw []byte) (int, error) {
	secret, err := w.sharedSecret(ctx, acct)
	if err != nil {
		return 0, err
	}
	// Registering (idempotent) makes the node keep what is published on a
	// v1 pair topic, so the recipient's node can fetch it later. A v2
	// inbox is published to without registering: the node holds it for
	// the named node all the same (PROTOCOL.md §16.6).
	if r.hint == nil {
		if err := s.Register(ctx, r.topic); err != nil {
			return 0, err
		}
	}
	chunks, err := mail.Split(mail.MessageID(it.MessageID), mail.KindMail, raw)
	if err != nil {
		return 0, err
	}
	if err := w.publish(ctx, s, it, c, r, secret, chunks); err != nil {
		return w.handedChunks(it, r.topic), err
	}
	w.hook("sent", it, len(chunks))
	return len(chunks), nil
}

// publish seals and publishes the chunks the node does not have yet
// (handedChunks), in batches, recording each batch the node stored.
func (w *Worker) publish(ctx context.Context, s Publisher, it mailstore.OutboxItem, c accounts.Contact, r route, secret keys.SharedSecret, chunks []mail.Chunk) error {
	from := w.handedChunks(it, r.topic)
	if from >= len(chunks) {
		return nil
	}
	sealed := sealAhead(secret, c.SharedKey, chunks[from:])
	defer sealed.stop()
	batch := make([][]byte, 0, PublishBatchChunks)
	for i := from; i < len(chunks); i++ {
		content, err := sealed.next()
		if err != nil {
			return err
		}
		if batch = append(batch, content); len(batch) < PublishBatchChunks && i < len(chunks)-1 {
			continue
		}
		if err := r.publish(ctx, s, batch); err != nil {
			return fmt.Errorf("publish chunks %d-%d of %d: %w", i+2-len(batch), i+1, len(chunks), err)
		}
		w.handOver(it, r.topic, i+1)
		batch = batch[:0]
		w.hook("published", it, i+1)
	}
	return nil
}

// PublishBatchChunks is how many chunks one node commit stores: a batch
// costs one fsync instead of one per chunk, and small batches keep the
// recipient working on the first chunks while the next are stored.
const PublishBatchChunks = 4

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
func (w *Worker) sharedSecret(ctx context.Context, a accounts.Account) (keys.SharedSecret, error) {
	w.mu.Lock()
	c, ok := w.secrets[a.Name]
	w.mu.Unlock()
	if ok && bytes.Equal(c.blocks, a.Blocks) {
		return c.secret, nil
	}
	s, err := w.dir.Secrets(ctx, w.cfg.NodeKey, a.Name)
	if err != nil {
		return keys.SharedSecret{}, err
	}
	w.mu.Lock()
	w.secrets[a.Name] = cachedSecret{blocks: bytes.Clone(a.Blocks), secret: s.SharedSecret}
	w.mu.Unlock()
	return s.SharedSecret, nil
}

func (w *Worker) hook(stage string, it mailstore.OutboxItem, chunk int) {
	if w.cfg.Hook != nil {
		w.cfg.Hook(stage, it, chunk)
	}
}

// contact is the recipient's contact with its passport. A passport id not
// in the address book (or still pending there) is looked up on the network
// and the result kept in the address book, under the id as petname.
func (w *Worker) contact(ctx context.Context, s Publisher, it mailstore.OutboxItem) (accounts.Contact, error) {
	id := passport.Hash(it.Passport)
	c, err := w.dir.Contact(ctx, it.Account, id)
	switch {
	case err == nil && !c.Pending():
		return c, nil
	case err != nil && !errors.Is(err, accounts.ErrNoContact):
		return c, err
	}
	pending := err == nil
	if err := w.paceLookup(ctx); err != nil {
		return c, err
	}
	blocks, err := s.GetPassport(ctx, id)
	if err != nil {
		return c, fmt.Errorf("%w: %s: %v", errUnknownPassport, id, err)
	}
	if pending {
		c, _, err = w.dir.UpdateContactPassport(ctx, it.Account, id, blocks)
	} else {
		c, err = w.dir.AddContact(ctx, it.Account, id.String(), blocks)
		if errors.Is(err, accounts.ErrContactExists) { // added meanwhile
			c, err = w.dir.Contact(ctx, it.Account, id)
		}
	}
	if err != nil {
		return c, err
	}
	if c.Pending() {
		return c, fmt.Errorf("%w: %s", errUnknownPassport, id)
	}
	w.log.Info("bridge: contact added from the network", "account", it.Account, "passport", id)
	return c, nil
}

// paceLookup waits until a passport look-up may start (LookupInterval).
func (w *Worker) paceLookup(ctx context.Context) error {
	w.mu.Lock()
	now := time.Now()
	start := now
	if w.nextLookup.After(now) {
		start = w.nextLookup
	}
	w.nextLookup = start.Add(w.cfg.LookupInterval)
	w.mu.Unlock()
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
func (w *Worker) deliverToSelf(ctx context.Context, a accounts.Account, it mailstore.OutboxItem, raw []byte) error {
	p, err := passport.Import(a.Blocks, time.Now())
	if err != nil {
		return err
	}
	key, ok := p.SharedKey()
	if !ok {
		return passport.ErrNoSharedKey
	}
	self := accounts.Contact{Account: a.Name, Name: a.Name, Passport: a.Passport}
	head, body := mailtext.SplitHead(raw)
	_, _, err = w.outbox.AppendInbound(ctx, a.Name, key, it.MessageID, mailtext.InboundCopy(head, self, w.cfg.Domain), body, time.Now())
	return err
}
