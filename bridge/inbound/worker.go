package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"time"

	"github.com/asmtp/asmtp/asmtp/keys"
	"github.com/asmtp/asmtp/asmtp/mail"
	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/mailtext"
	"github.com/asmtp/asmtp/mailstore"
)

// expireInterval is how often incomplete inbound messages are checked for
// the reassembly timeout (and the replay memory trimmed), or a quarter of
// the timeout if that is shorter.
const expireInterval = time.Minute

// Worker reads what the node pushes for one account and delivers it to
// the account's INBOX (see the package documentation). One goroutine runs
// it; nothing in it is shared.
type Worker struct {
	cfg     Config
	account string
	dir     Directory
	mailbox Mailbox
	s       Subscription
	kick    chan struct{}
	log     *slog.Logger

	secret *keys.SharedSecret // unsealed on first use
	pos    map[topic.Topic]node.Cursor
	swept  map[topic.Topic]bool // read from pos since the worker started
	stuck  map[topic.Topic]bool // a delivery failed: pos stays before it until a sweep succeeds
	dirty  map[topic.Topic]bool // pos not saved yet

	held      map[heldKey]*heldMessage // see hold
	heldBytes int64
	flushT    *time.Timer // runs when a held message is due to be flushed; stopped when none is held
}

// Chunks of a multi-chunk message are first held in memory (hold): a
// message whose chunks all come within HeldFlushAfter is delivered without
// its chunks ever being written to the reassembly buffer, the costliest
// part of receiving a large message otherwise (a transaction per chunk,
// then reading them back, deleting them, checkpointing them). Nothing is
// lost in a crash: the topic's saved cursor stays before the first chunk
// held (saveCursors), so they are read again from the node's store. A
// message still incomplete after HeldFlushAfter, or when more than
// heldMaxBytes are held, goes to the buffer, which then takes its further
// chunks, so that the cursor is not held back for long. heldMaxBytes
// lets the largest message complete in memory, which its assembly needs
// anyway.
const (
	HeldFlushAfter = 2 * time.Second
	heldMaxBytes   = mail.MaxMessageSize
)

type heldKey struct {
	sender keys.SharedKey
	id     mail.MessageID
}

type heldMessage struct {
	topic    topic.Topic
	first    node.Cursor // the smallest cursor of its chunks
	since    time.Time   // when its first chunk came
	last     time.Time   // when its latest chunk came
	received time.Time   // the node's ReceivedAt of the latest chunk
	kind     mail.Kind   // as every chunk of the message must say
	total    uint32
	chunks   []mail.Chunk // by index
	have     []bool
	n        int // chunks held
	bytes    int64
	// joined is the message once every chunk came. The chunks' data is
	// let go then, so that a large message is not in memory twice while
	// it is delivered; it is kept for a retry if delivery fails.
	joined *mail.Message
}

// NewWorker delivers to account's INBOX in mailbox what the node pushes
// on s, from the account's contacts in dir. Run runs it.
func NewWorker(cfg Config, account string, dir Directory, mailbox Mailbox, s Subscription) *Worker {
	cfg.SetDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Worker{
		cfg: cfg, account: account, dir: dir, mailbox: mailbox, s: s, kick: make(chan struct{}, 1),
		log:    log.With("account", account),
		pos:    make(map[topic.Topic]node.Cursor),
		swept:  make(map[topic.Topic]bool),
		stuck:  make(map[topic.Topic]bool),
		dirty:  make(map[topic.Topic]bool),
		held:   make(map[heldKey]*heldMessage),
		flushT: stoppedTimer(),
	}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// Wake makes the worker read the store for topics it has not read yet
// (after new contacts' topics were registered).
func (w *Worker) Wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is done or the session closes.
func (w *Worker) Run(ctx context.Context) {
	defer w.flushT.Stop()
	defer func() {
		ctx := context.WithoutCancel(ctx)
		w.flushHeld(ctx, time.Time{})
		w.saveCursors(ctx)
	}()
	w.finishComplete(ctx)
	w.sweep(ctx, false)
	tick := time.NewTicker(max(min(expireInterval, w.cfg.ReassemblyTimeout/4), 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-w.s.Deliveries():
			if !ok {
				return
			}
			if d.Missed > 0 {
				w.log.Info("bridge: pushes missed, reading the store", "missed", d.Missed)
				w.sweep(ctx, true)
			}
			err := w.handle(ctx, d.Stored)
			w.advance(d.Topic, d.Cursor, err)
			if len(w.s.Deliveries()) == 0 {
				w.saveCursors(ctx)
			}
		case <-w.kick:
			w.sweep(ctx, false)
		case <-tick.C:
			w.expire(ctx)
			w.sweep(ctx, false)
		case <-w.flushT.C:
			w.flushHeld(ctx, time.Now().Add(-HeldFlushAfter))
			w.saveCursors(ctx)
		}
		if len(w.held) == 0 {
			w.flushT.Stop()
		}
	}
}

// advance records a handled message; a failed delivery keeps the topic's
// position before it so the next sweep tries it again.
func (w *Worker) advance(t topic.Topic, c node.Cursor, err error) {
	if err != nil {
		w.stuck[t] = true
		return
	}
	if w.swept[t] && !w.stuck[t] && c > w.pos[t] {
		w.pos[t] = c
		w.dirty[t] = true
	}
}

// sweep reads the node's store for the contacts' topics, and the old
// topics of rotated contacts in their grace period, from where the worker
// left them: those never read (or stuck), or all when force.
func (w *Worker) sweep(ctx context.Context, force bool) {
	contacts, err := w.dir.Contacts(ctx, w.account)
	if err != nil {
		w.log.Error("bridge: read contacts", "err", err)
		return
	}
	rotated, err := w.dir.RotatedContacts(ctx, w.account, w.graceStart())
	if err != nil {
		w.log.Error("bridge: read rotated contacts", "err", err)
	}
	var topics []topic.Topic
	for _, c := range append(contacts, rotated...) {
		if !c.Pending() {
			topics = append(topics, c.Topic)
		}
	}
	if w.cfg.Naming != nil {
		topics = append(topics, w.cfg.Naming.Topics()...)
	}
	for _, t := range topics {
		if w.swept[t] && !w.stuck[t] && !force {
			continue
		}
		if err := w.sweepTopic(ctx, t); err != nil {
			w.log.Debug("bridge: topic not read", "topic", t, "err", err)
		}
	}
	w.saveCursors(ctx)
}

func (w *Worker) sweepTopic(ctx context.Context, t topic.Topic) error {
	if _, ok := w.pos[t]; !ok {
		c, err := w.mailbox.InboundCursor(ctx, w.account, t[:])
		if err != nil {
			return err
		}
		w.pos[t] = node.Cursor(c)
	}
	for {
		msgs, err := w.s.Query(ctx, t, w.pos[t])
		if err != nil {
			return err // e.g. not registered yet: read at the next wake
		}
		if len(msgs) == 0 {
			w.swept[t], w.stuck[t] = true, false
			return nil
		}
		for _, m := range msgs {
			if err := w.handle(ctx, m); err != nil {
				w.stuck[t] = true
				return err
			}
			w.pos[t], w.dirty[t] = m.Cursor, true
		}
	}
}

func (w *Worker) saveCursors(ctx context.Context) {
	if len(w.dirty) == 0 {
		return
	}
	cursors := make(map[string]int64, len(w.dirty))
	for t := range w.dirty {
		cursors[string(t[:])] = int64(w.pos[t])
	}
	for _, hm := range w.held { // read them again after a crash
		if c, ok := cursors[string(hm.topic[:])]; ok && c >= int64(hm.first) {
			cursors[string(hm.topic[:])] = int64(hm.first) - 1
		}
	}
	if err := w.mailbox.SetInboundCursors(ctx, w.account, cursors); err != nil {
		w.log.Error("bridge: save inbound cursors", "err", err)
		return
	}
	clear(w.dirty)
	// What the mailstore holds now may go first when the node is full.
	for k, c := range cursors {
		if err := w.s.Fetched(ctx, topic.Topic([]byte(k)), node.Cursor(c)); err != nil {
			w.log.Warn("bridge: tell the node what was fetched", "err", err)
		}
	}
}

// report tells the node that m does not open, so that it charges the
// peer that delivered it (the node ignores the account's own
// publications).
func (w *Worker) report(ctx context.Context, m node.Stored) {
	if err := w.s.Report(ctx, m.Cursor); err != nil {
		w.log.Warn("bridge: report unreadable content to the node", "err", err)
	}
}

// handle takes one topic message. Contents that cannot be read or are not
// from the topic's contact are dropped and logged (nil); an error means
// the message could not be stored and should be read again later.
func (w *Worker) handle(ctx context.Context, m node.Stored) error {
	c, ch, ok, err := w.open(ctx, m)
	if err != nil || !ok {
		return err
	}
	return w.take(ctx, c, m, ch)
}

// open reads m: a content on one of the account's inboxes or its intro
// bucket (naming v2, naming.go), or on a v1 contact's topic. ok is false
// for content to drop (and for a card, taken here).
func (w *Worker) open(ctx context.Context, m node.Stored) (accounts.Contact, mail.Chunk, bool, error) {
	if n := w.cfg.Naming; n != nil {
		switch {
		case n.IsInbox(m.Topic):
			return w.openInbox(ctx, n, m)
		case n.IsBucket(m.Topic):
			return accounts.Contact{}, mail.Chunk{}, false, w.tryCard(ctx, n, m)
		}
	}
	c, err := w.contactOn(ctx, m.Topic)
	if errors.Is(err, accounts.ErrNoContact) {
		w.log.Debug("bridge: content on a topic of no contact dropped", "topic", m.Topic)
		return c, mail.Chunk{}, false, nil
	}
	if err != nil {
		return c, mail.Chunk{}, false, err
	}
	secret, err := w.sharedSecret(ctx)
	if err != nil {
		return c, mail.Chunk{}, false, err
	}
	ch, err := mail.Open(*secret, c.SharedKey, m.Content)
	switch {
	case errors.Is(err, mail.ErrWrongSender):
		w.log.Warn("bridge: content sealed by another key than the topic's contact dropped",
			"topic", m.Topic, "contact", c.Passport, "err", err)
		w.report(ctx, m)
		return c, ch, false, nil
	case err != nil: // also the account's own publications on the topic
		w.log.Debug("bridge: unreadable content dropped", "topic", m.Topic, "contact", c.Passport, "err", err)
		w.report(ctx, m)
		return c, ch, false, nil
	}
	return c, ch, true, nil
}

// take delivers or holds chunk ch of contact c, read from m.
func (w *Worker) take(ctx context.Context, c accounts.Contact, m node.Stored, ch mail.Chunk) error {
	if ch.Kind == mail.KindLegacyText || ch.Count == 1 {
		return w.deliver(ctx, c, mail.Message{Sender: ch.Sender, ID: ch.ID, Kind: ch.Kind, Data: ch.Data}, m.ReceivedAt)
	}
	if hm := w.held[heldKey{ch.Sender, ch.ID}]; hm != nil {
		return w.holdChunk(ctx, c, m, hm, ch)
	}
	delivered, inBuffer, err := w.mailbox.MessageState(ctx, w.account, ch.Sender, ch.ID)
	switch {
	case err != nil:
		return err
	case delivered:
		return nil
	case inBuffer == 0 && w.heldBytes+int64(len(ch.Data)) <= w.maxHeldBytes():
		hm := &heldMessage{topic: m.Topic, first: m.Cursor, since: time.Now(), kind: ch.Kind, total: ch.Total,
			chunks: make([]mail.Chunk, ch.Count), have: make([]bool, ch.Count)}
		w.held[heldKey{ch.Sender, ch.ID}] = hm
		w.log.Debug("bridge: chunks of a message held in memory", "sender", ch.Sender, "chunks", ch.Count)
		if len(w.held) == 1 {
			w.flushT.Reset(HeldFlushAfter)
		}
		return w.holdChunk(ctx, c, m, hm, ch)
	}
	return w.addChunk(ctx, c, ch, time.Now(), m.ReceivedAt)
}

func (w *Worker) maxHeldBytes() int64 {
	return min(heldMaxBytes, w.cfg.MaxPendingBytes)
}

// holdChunk adds ch to the held message hm and delivers hm once complete.
func (w *Worker) holdChunk(ctx context.Context, c accounts.Contact, m node.Stored, hm *heldMessage, ch mail.Chunk) error {
	if int(ch.Count) != len(hm.chunks) || ch.Total != hm.total || ch.Kind != hm.kind || int(ch.Index) >= len(hm.chunks) {
		w.log.Warn("bridge: inconsistent chunk dropped", "contact", c.Passport, "err",
			fmt.Errorf("message %x chunk %d/%d: %w", ch.ID, ch.Index, ch.Count, mailstore.ErrChunkMismatch))
		return nil
	}
	if !hm.have[ch.Index] { // else a duplicate, which may complete a message whose delivery failed
		hm.chunks[ch.Index], hm.have[ch.Index] = ch, true
		hm.n++
		hm.bytes += int64(len(ch.Data))
		w.heldBytes += int64(len(ch.Data))
	}
	hm.first = min(hm.first, m.Cursor)
	hm.last, hm.received = time.Now(), m.ReceivedAt
	if hm.n < len(hm.chunks) {
		if w.heldBytes > w.maxHeldBytes() {
			w.flushHeld(ctx, time.Time{})
		}
		return nil
	}
	if hm.joined == nil {
		msg, err := mail.Join(hm.chunks)
		if err != nil { // cannot get better by trying again
			w.log.Error("bridge: chunks do not join", "contact", c.Passport, "err", err)
			w.dropHeld(heldKey{ch.Sender, ch.ID})
			return nil
		}
		hm.joined = &msg
		clear(hm.chunks)
	}
	if err := w.deliver(ctx, c, *hm.joined, hm.received); err != nil {
		return err // kept: reading the chunk again retries
	}
	w.dropHeld(heldKey{ch.Sender, ch.ID})
	return nil
}

// dropHeld forgets a held message; the cursor of its topic may move past it.
func (w *Worker) dropHeld(k heldKey) {
	hm := w.held[k]
	delete(w.held, k)
	w.heldBytes -= hm.bytes
	w.dirty[hm.topic] = true
}

// flushHeld moves the held messages that came before since (all when
// since is zero) to the reassembly buffer.
func (w *Worker) flushHeld(ctx context.Context, since time.Time) {
	for k, hm := range w.held {
		if !since.IsZero() && hm.since.After(since) {
			continue
		}
		if err := w.flushMessage(ctx, k, hm); err != nil {
			w.log.Error("bridge: store chunks in the reassembly buffer", "err", err)
			continue // held, and tried again at the next flush
		}
		w.dropHeld(k)
	}
	if len(w.held) > 0 {
		w.flushT.Reset(HeldFlushAfter)
	}
}

// flushMessage moves the held message k to the reassembly buffer. Its
// contact is found by the chunks' sender key, not by its topic: a naming-v2
// inbox names no contact (PROTOCOL.md §16), and on a v1 topic the key
// names the same contact (mail.Open checked it).
func (w *Worker) flushMessage(ctx context.Context, k heldKey, hm *heldMessage) error {
	c, err := w.contactByKey(ctx, k.sender)
	if errors.Is(err, accounts.ErrNoContact) { // removed meanwhile: its mail is not wanted
		w.log.Warn("bridge: held chunks of a sender no longer a contact dropped", "sender", k.sender,
			"chunks", hm.n, "of", len(hm.have))
		return nil
	}
	if err != nil {
		return err
	}
	chunks := hm.chunks
	if hm.joined != nil { // cut again as its sender did: the same chunks
		if chunks, err = mail.Split(hm.joined.ID, hm.joined.Kind, hm.joined.Data); err != nil {
			return err
		}
		for i := range chunks {
			chunks[i].Sender = hm.joined.Sender
		}
	}
	for i, ch := range chunks {
		if !hm.have[i] {
			continue
		}
		if err := w.addChunk(ctx, c, ch, hm.last, hm.received); err != nil {
			return err
		}
	}
	return nil
}

// addChunk puts ch, which came at now, in the reassembly buffer and
// delivers its message once complete.
func (w *Worker) addChunk(ctx context.Context, c accounts.Contact, ch mail.Chunk, now, received time.Time) error {
	res, err := w.mailbox.AddChunk(ctx, w.account, toStored(ch), now, w.limits())
	if errors.Is(err, mailstore.ErrChunkMismatch) {
		w.log.Warn("bridge: inconsistent chunk dropped", "contact", c.Passport, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	for _, p := range res.Evicted {
		w.log.Warn("bridge: incomplete message dropped to make room", "sender", keys.SharedKey(p.Sender), "chunks", p.Held, "of", p.Count)
		w.noticeDropped(ctx, p, "The parts were dropped to make room for newer messages (too many incomplete messages at once).")
	}
	if res.Status != mailstore.ChunkComplete {
		return nil
	}
	return w.assemble(ctx, c, ch.Sender, ch.ID, received)
}

// assemble joins a complete message's chunks and delivers it.
func (w *Worker) assemble(ctx context.Context, c accounts.Contact, sender keys.SharedKey, id mail.MessageID, received time.Time) error {
	stored, err := w.mailbox.Chunks(ctx, w.account, sender, id)
	if err != nil {
		return err
	}
	chunks := make([]mail.Chunk, len(stored))
	for i, s := range stored {
		chunks[i] = mail.Chunk{Sender: s.Sender, ID: s.ID, Kind: mail.Kind(s.Kind), Index: s.Index, Count: s.Count, Total: s.Total, Data: s.Data}
	}
	msg, err := mail.Join(chunks)
	if err != nil { // cannot get better by trying again; the chunks expire
		w.log.Error("bridge: chunks do not join", "contact", c.Passport, "err", err)
		return nil
	}
	return w.deliver(ctx, c, msg, received)
}

// deliver rewrites the header of a complete message and stores it in INBOX
// (once per sender and message id).
func (w *Worker) deliver(ctx context.Context, c accounts.Contact, msg mail.Message, received time.Time) error {
	data := msg.Data
	if msg.Kind == mail.KindLegacyText {
		a, err := w.dir.Account(ctx, w.account)
		if err != nil {
			return err
		}
		data, err = mail.FormatLegacy(msg, mail.LegacyHeader{From: *c.MailAddress(w.cfg.Domain),
			To: netmail.Address{Address: a.Address(w.cfg.Domain).String()}, Date: received})
		if err != nil {
			return err
		}
	}
	head, body := mailtext.SplitHead(data)
	a, delivered, err := w.mailbox.AppendInbound(ctx, w.account, msg.Sender, msg.ID, mailtext.InboundCopy(head, c, w.cfg.Domain), body, time.Now())
	if err != nil {
		return err
	}
	if delivered {
		w.log.Info("bridge: mail received", "from", c.Passport, "bytes", len(msg.Data), "uid", a.UID)
	} else {
		w.log.Debug("bridge: message delivered before ignored", "from", c.Passport, "id", msg.ID)
	}
	return nil
}

// finishComplete delivers messages whose chunks were all stored before a
// crash, but which were not delivered yet.
func (w *Worker) finishComplete(ctx context.Context) {
	done, err := w.mailbox.CompleteMessages(ctx, w.account)
	if err != nil {
		w.log.Error("bridge: read the reassembly buffer", "err", err)
		return
	}
	for _, p := range done {
		c, err := w.contactByKey(ctx, p.Sender)
		if err == nil {
			err = w.assemble(ctx, c, p.Sender, p.ID, p.LastChunk)
		}
		if err != nil {
			w.log.Error("bridge: deliver a reassembled message", "err", err)
		}
	}
}

// expire drops incomplete messages past the reassembly timeout, telling
// the user in INBOX, and trims the memory of delivered ids.
func (w *Worker) expire(ctx context.Context) {
	cfg := w.cfg
	dropped, err := w.mailbox.ExpireChunks(ctx, w.account, time.Now().Add(-cfg.ReassemblyTimeout))
	if err != nil {
		w.log.Error("bridge: expire incomplete messages", "err", err)
	}
	for _, p := range dropped {
		w.log.Warn("bridge: incomplete message dropped after the reassembly timeout", "sender", keys.SharedKey(p.Sender), "chunks", p.Held, "of", p.Count)
		w.noticeDropped(ctx, p, fmt.Sprintf("The parts were dropped after waiting %s for the rest.", mailtext.Duration(cfg.ReassemblyTimeout)))
	}
	if _, err := w.mailbox.ForgetAppended(ctx, w.account, cfg.ReplayMemory); err != nil {
		w.log.Error("bridge: trim delivered ids", "err", err)
	}
}

// noticeDropped tells the user in INBOX that part of a message never came,
// and why (reason, a sentence).
func (w *Worker) noticeDropped(ctx context.Context, p mailstore.PendingMessage, reason string) {
	c, err := w.contactByKey(ctx, p.Sender)
	if err != nil {
		return
	}
	domain := w.cfg.Domain
	from := c.MailAddress(domain).String()
	notice := fmt.Sprintf("From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"+
		"Subject: Incomplete message from %s\r\nDate: %s\r\nAuto-Submitted: auto-generated\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n",
		domain, from, time.Now().Format(time.RFC1123Z),
		mailtext.Wrap(fmt.Sprintf("%s sent you a message in %d parts, but only %d arrived, the last on %s. %s Ask the sender to send it again.",
			from, p.Count, p.Held, p.LastChunk.Format(time.RFC1123Z), reason), 76))
	if _, err := w.mailbox.Append(ctx, w.account, mailstore.Inbox, []byte(notice), nil, time.Now()); err != nil {
		w.log.Error("bridge: store an incomplete-message notice", "err", err)
	}
}

func (w *Worker) limits() mailstore.ReassemblyLimits {
	return mailstore.ReassemblyLimits{MaxMessages: w.cfg.MaxPendingMessages, MaxBytes: w.cfg.MaxPendingBytes}
}

func (w *Worker) sharedSecret(ctx context.Context) (*keys.SharedSecret, error) {
	if w.secret == nil {
		s, err := w.dir.Secrets(ctx, w.cfg.NodeKey, w.account)
		if err != nil {
			return nil, err
		}
		w.secret = &s.SharedSecret
	}
	return w.secret, nil
}

// contactOn finds the sender of mail on topic t: the contact whose topic
// it is or, failing that, a rotated contact whose old topic it was, still
// in its grace period, with the old shared key (which the mail must then
// be sealed by). The two cannot both match: a rotated topic that a
// contact uses again is that contact's.
func (w *Worker) contactOn(ctx context.Context, t topic.Topic) (accounts.Contact, error) {
	c, err := w.dir.ContactByTopic(ctx, w.account, t)
	if !errors.Is(err, accounts.ErrNoContact) {
		return c, err
	}
	return w.dir.RotatedContactByTopic(ctx, w.account, t, w.graceStart())
}

// contactByKey finds the contact whose current shared key is k, or whose
// shared key was k before a rotation still in its grace period.
func (w *Worker) contactByKey(ctx context.Context, k keys.SharedKey) (accounts.Contact, error) {
	contacts, err := w.dir.Contacts(ctx, w.account)
	if err != nil {
		return accounts.Contact{}, err
	}
	rotated, err := w.dir.RotatedContacts(ctx, w.account, w.graceStart())
	if err != nil {
		return accounts.Contact{}, err
	}
	for _, c := range append(contacts, rotated...) {
		if !c.Pending() && c.SharedKey == k {
			return c, nil
		}
	}
	return accounts.Contact{}, fmt.Errorf("sender %s: %w", k, accounts.ErrNoContact)
}

func toStored(c mail.Chunk) mailstore.InboundChunk {
	return mailstore.InboundChunk{Sender: c.Sender, ID: c.ID, Kind: uint8(c.Kind), Index: c.Index, Count: c.Count, Total: c.Total, Data: c.Data}
}

// graceStart is when a rotation must have been made for its old topic to
// be still in its grace period.
func (w *Worker) graceStart() time.Time { return time.Now().Add(-w.cfg.RotationGrace) }
