package main

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asmtp/asmtp/cmd/asmtpd/internal/testnet"
)

// TestNetworkChurn runs the nothing-lost scenario on a real network (the
// testnet harness: one network namespace per asmtpd process): accounts
// mail their contacts with smtplib while nodes are killed and restarted,
// stopped and continued, and the network is partitioned and healed. Every
// mail that got its 250 must then be in its recipient's INBOX (imaplib)
// exactly once; a delivery report is allowed only for mails to a node kept
// down past the retry window.
//
// In CI: 8 nodes, 16 accounts, 200 mails. With ASMTP_TESTNET_BENCH=1 (or
// contrib/testnet/testnet.sh bench) it is the benchmark: 30 nodes, 60
// accounts, 2,000 mails over 10 minutes of churn.
func TestNetworkChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 8 asmtpd processes and mail clients for about three minutes")
	}
	plan := ciChurn()
	if os.Getenv("ASMTP_TESTNET_BENCH") != "" {
		plan = benchChurn()
	}
	runChurn(t, tuned(t, plan))
}

// churnPlan is one scenario's size and faults.
type churnPlan struct {
	nodes, accounts, mails, mailSize int
	sending                          time.Duration // the mails are submitted evenly over it
	faults                           []fault
	retryWindow                      time.Duration
	deliveryTimeout                  time.Duration // after the last submission and the last fault
}

// fault is one action of the fault injector, at a time from the start of
// the submissions.
type fault struct {
	at    time.Duration
	act   string // kill, restart, pause, resume, partition, heal
	nodes []int
}

func ciChurn() churnPlan {
	return churnPlan{
		nodes: 8, accounts: 16, mails: 200, mailSize: 2 << 10,
		sending: 50 * time.Second,
		faults: []fault{
			{8 * time.Second, "kill", []int{3}},
			{12 * time.Second, "pause", []int{6}},
			{22 * time.Second, "restart", []int{3}},
			{27 * time.Second, "resume", []int{6}},
			{30 * time.Second, "partition", []int{4, 5, 6, 7}},
			{45 * time.Second, "heal", nil},
		},
		retryWindow:     10 * time.Minute,
		deliveryTimeout: 2 * time.Minute,
	}
}

// benchChurn: a fault every 20 s for 9 minutes, cycling through a kill
// (restart 40 s later), a pause (resumed 20 s later) and a partition of a
// random third of the nodes (healed 30 s later).
func benchChurn() churnPlan {
	p := churnPlan{
		nodes: 30, accounts: 60, mails: 2000, mailSize: 4 << 10,
		sending:         10 * time.Minute,
		retryWindow:     time.Hour,
		deliveryTimeout: 5 * time.Minute,
	}
	rng := mrand.New(mrand.NewPCG(11, 3))
	for k, at := 0, 20*time.Second; at < 9*time.Minute; k, at = k+1, at+20*time.Second {
		node := []int{rng.IntN(p.nodes)}
		switch k % 3 {
		case 0:
			p.faults = append(p.faults, fault{at, "kill", node}, fault{at + 40*time.Second, "restart", node})
		case 1:
			p.faults = append(p.faults, fault{at, "pause", node}, fault{at + 20*time.Second, "resume", node})
		case 2:
			p.faults = append(p.faults, fault{at, "partition", rng.Perm(p.nodes)[:p.nodes/3]}, fault{at + 30*time.Second, "heal", nil})
		}
	}
	slices.SortStableFunc(p.faults, func(a, b fault) int { return int(a.at - b.at) })
	return p
}

// tuned applies the environment's overrides to a plan, to explore:
// ASMTP_TESTNET_NODES, _ACCOUNTS, _MAILS (numbers), _SENDING (a
// duration) and _FAULTS=off.
func tuned(t *testing.T, p churnPlan) churnPlan {
	for name, v := range map[string]*int{"NODES": &p.nodes, "ACCOUNTS": &p.accounts, "MAILS": &p.mails} {
		if s := os.Getenv("ASMTP_TESTNET_" + name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("ASMTP_TESTNET_%s: %v", name, err)
			}
			*v = n
		}
	}
	if s := os.Getenv("ASMTP_TESTNET_SENDING"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("ASMTP_TESTNET_SENDING: %v", err)
		}
		p.sending = d
	}
	if os.Getenv("ASMTP_TESTNET_FAULTS") == "off" {
		p.faults = nil
	}
	return p
}

// sentMail is one submission and its fate.
type sentMail struct {
	id       string
	from, to *testnet.Account
	acked    time.Time // zero: no 250
	copies   int       // in to's INBOX
	arrived  time.Time // INTERNALDATE of the first copy
	bounced  bool      // a delivery report in from's INBOX names it
	wrongBox []string  // accounts that got it without being its recipient
}

func runChurn(t *testing.T, plan churnPlan) {
	ctx := context.Background()
	began := time.Now()
	net, err := testnet.New(ctx, testnet.Config{
		Bin: buildBinaries(t), Dir: churnDir(t), Nodes: plan.nodes, Accounts: plan.accounts,
		Contacts: churnContacts(plan.accounts), RetryWindow: plan.retryWindow, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range net.Nodes {
				t.Logf("--- last lines of node %s ---\n%s", n.Name, n.LogTail(15))
			}
		}
		if err := net.Close(context.Background()); err != nil {
			t.Errorf("closing the network: %v", err)
		}
	})
	if err := net.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d nodes (namespaces: %v), %d accounts up after %v", plan.nodes, net.Namespaced(), plan.accounts, time.Since(began).Round(time.Millisecond))

	run := &churnRun{t: t, net: net, plan: plan, prefix: "tn" + fmt.Sprintf("%04x", mrand.IntN(1<<16)) + "-"}
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { run.injectFaults(ctx, start) })
	run.submit(ctx, start)
	wg.Wait()
	t.Logf("submissions and faults done %v after the first submission", time.Since(start).Round(time.Millisecond))
	run.awaitDelivery(ctx)
	run.judge()
	run.report(ctx)
}

// churnContacts pairs account i with i+3 and i+5: each has four contacts,
// none on its own node when the accounts are spread round-robin over more
// than five nodes.
func churnContacts(accounts int) [][2]int {
	seen := map[[2]int]bool{}
	var pairs [][2]int
	for i := range accounts {
		for _, d := range []int{3, 5} {
			p := [2]int{min(i, (i+d)%accounts), max(i, (i+d)%accounts)}
			if p[0] != p[1] && !seen[p] {
				seen[p] = true
				pairs = append(pairs, p)
			}
		}
	}
	return pairs
}

type churnRun struct {
	t      *testing.T
	net    *testnet.Network
	plan   churnPlan
	prefix string // of every mail's id

	mu    sync.Mutex
	mails map[string]*sentMail
	down  map[int]time.Duration // node → longest time it was down (killed)
}

func (r *churnRun) injectFaults(ctx context.Context, start time.Time) {
	killedAt := map[int]time.Time{}
	for _, f := range r.plan.faults {
		time.Sleep(time.Until(start.Add(f.at)))
		if err := r.apply(ctx, f, killedAt); err != nil {
			r.t.Errorf("fault %s %v at %v: %v", f.act, f.nodes, f.at, err)
		}
		r.t.Logf("fault %s %v, planned at %v, done at %v", f.act, f.nodes, f.at, time.Since(start).Round(time.Millisecond))
	}
}

func (r *churnRun) apply(ctx context.Context, f fault, killedAt map[int]time.Time) error {
	if f.act == "partition" || f.act == "heal" {
		var err error
		if f.act == "partition" {
			err = r.net.Partition(ctx, f.nodes)
		} else {
			err = r.net.Heal(ctx)
		}
		if err == testnet.ErrNoPartition {
			r.t.Logf("fault %s skipped: %v", f.act, err)
			return nil
		}
		return err
	}
	for _, i := range f.nodes {
		n := r.net.Nodes[i]
		var err error
		switch f.act {
		case "kill":
			if !n.Running() {
				continue // a random plan may pick a node already down
			}
			killedAt[i] = time.Now()
			err = n.Kill()
		case "restart":
			if n.Running() {
				continue
			}
			r.noteDown(i, time.Since(killedAt[i]))
			err = n.Start(ctx)
		case "pause", "resume":
			if !n.Running() {
				continue // killed meanwhile
			}
			if f.act == "pause" {
				err = n.Pause()
			} else {
				err = n.Resume()
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *churnRun) noteDown(i int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down == nil {
		r.down = map[int]time.Duration{}
	}
	r.down[i] = max(r.down[i], d)
}

// submissionTimeout bounds one SMTP exchange: a paused node never answers.
const submissionTimeout = 8 * time.Second

// submit hands the mails to smtplib a second's worth at a time, one client
// per sending account, at most maxClients at once (a loaded machine must
// not pile up clients); a mail not acknowledged is submitted again (under a
// new id) at a later tick, up to maxAttempts times.
func (r *churnRun) submit(ctx context.Context, start time.Time) {
	r.mails = map[string]*sentMail{}
	rng := mrand.New(mrand.NewPCG(uint64(start.UnixNano()), 7))
	retries := make(chan churnJob, r.plan.mails*maxAttempts)
	var inflight sync.WaitGroup
	var busyMu sync.Mutex
	busy := map[*testnet.Account]bool{}
	ticks := int(r.plan.sending / time.Second)
	var pending []churnJob
	for tick, seq := 0, 0; ; tick++ {
		time.Sleep(time.Until(start.Add(time.Duration(tick) * time.Second)))
		for ; seq < r.plan.mails && seq*ticks < (tick+1)*r.plan.mails; seq++ {
			from := r.net.Accounts[rng.IntN(len(r.net.Accounts))]
			pending = append(pending, churnJob{seq: seq, from: from, to: from.Contacts[rng.IntN(len(from.Contacts))]})
		}
		pending = append(pending, drainJobs(retries)...)
		busyMu.Lock()
		if seq == r.plan.mails && len(pending) == 0 && len(busy) == 0 {
			busyMu.Unlock()
			break
		}
		var waiting []churnJob
		for from, jobs := range groupBySender(pending) {
			if busy[from] || len(busy) >= maxClients {
				waiting = append(waiting, jobs...)
				continue
			}
			busy[from] = true
			inflight.Go(func() {
				r.send(ctx, from, jobs, retries)
				busyMu.Lock()
				delete(busy, from)
				busyMu.Unlock()
			})
		}
		busyMu.Unlock()
		pending = waiting
		if tick > ticks+300 {
			r.t.Errorf("%d mails still not submitted 5 minutes after the submissions should have ended", len(pending))
			break
		}
	}
	inflight.Wait()
}

// maxClients bounds the SMTP clients running at once.
const maxClients = 6

// maxAttempts bounds the submissions of one mail that gets no 250: about
// one a second, so a sender's node may be down for half a minute.
const maxAttempts = 30

// churnJob is a mail to submit: its sequence number and attempt make its id.
type churnJob struct {
	seq, attempt int
	from, to     *testnet.Account
}

func (r *churnRun) id(j churnJob) string { return fmt.Sprintf("%s%04d-%d", r.prefix, j.seq, j.attempt) }

func drainJobs(c chan churnJob) []churnJob {
	var jobs []churnJob
	for {
		select {
		case j := <-c:
			jobs = append(jobs, j)
		default:
			return jobs
		}
	}
}

func groupBySender(jobs []churnJob) map[*testnet.Account][]churnJob {
	m := map[*testnet.Account][]churnJob{}
	for _, j := range jobs {
		m[j.from] = append(m[j.from], j)
	}
	return m
}

// send submits jobs as from and queues those without a 250 for retry.
func (r *churnRun) send(ctx context.Context, from *testnet.Account, jobs []churnJob, retries chan<- churnJob) {
	var out []testnet.Outgoing
	for _, j := range jobs {
		r.record(&sentMail{id: r.id(j), from: from, to: j.to})
		out = append(out, testnet.Outgoing{ID: r.id(j), To: j.to, Size: r.plan.mailSize})
	}
	acks, err := r.net.Send(ctx, from, out, submissionTimeout)
	if err != nil {
		r.t.Logf("submission as %s: %v", from.Name, err)
	}
	ok := r.acknowledge(acks)
	for _, j := range jobs {
		if !ok[r.id(j)] && j.attempt+1 < maxAttempts {
			j.attempt++
			retries <- j
		}
	}
}

func (r *churnRun) record(m *sentMail) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mails[m.id] = m
}

// acknowledge records the 250s and returns the ids that got one.
func (r *churnRun) acknowledge(acks []testnet.Ack) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := map[string]bool{}
	for _, a := range acks {
		if a.Err == "" {
			r.mails[a.ID].acked = a.At
			ok[a.ID] = true
		}
	}
	return ok
}

// awaitDelivery reads every INBOX until each acknowledged mail is in its
// recipient's or bounced, and then until two readings in a row agree (so
// that late duplicates are seen), or until the plan's timeout.
func (r *churnRun) awaitDelivery(ctx context.Context) {
	began := time.Now()
	deadline := began.Add(r.plan.deliveryTimeout)
	var last string
	for {
		r.readInboxes(ctx)
		settled := r.settled()
		if settled != "" && settled == last {
			r.t.Logf("INBOXes settled %v after the end of the submissions", time.Since(began).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			r.t.Logf("INBOXes not settled after %v", r.plan.deliveryTimeout)
			return
		}
		last = settled
		time.Sleep(2 * time.Second) // the INBOXes are polled, as a mail client would
	}
}

// readInboxes records, for every mail, the copies in its recipient's INBOX
// and the delivery reports about it in its sender's.
func (r *churnRun) readInboxes(ctx context.Context) {
	boxes := make([][]testnet.Received, len(r.net.Accounts))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, a := range r.net.Accounts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			msgs, err := r.net.Inbox(ctx, a, r.prefix)
			if err != nil {
				r.t.Logf("reading %s's INBOX: %v", a.Name, err)
			}
			boxes[i] = msgs
		})
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.mails {
		m.copies, m.arrived, m.bounced, m.wrongBox = 0, time.Time{}, false, nil
	}
	for i, box := range boxes {
		r.file(r.net.Accounts[i], box)
	}
}

// file counts one account's INBOX into the mails' records.
func (r *churnRun) file(a *testnet.Account, box []testnet.Received) {
	for _, msg := range box {
		for _, id := range msg.Bounced {
			if m := r.mails[id]; m != nil && m.from == a {
				m.bounced = true
			}
		}
		m := r.mails[msg.Subject]
		switch {
		case m == nil:
		case m.to != a:
			m.wrongBox = append(m.wrongBox, a.Name)
		default:
			if m.copies++; m.arrived.IsZero() || msg.At.Before(m.arrived) {
				m.arrived = msg.At
			}
		}
	}
}

// settled is a summary of the INBOXes, or "" while an acknowledged mail
// is neither delivered nor bounced.
func (r *churnRun) settled() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	copies := 0
	for _, m := range r.mails {
		if !m.acked.IsZero() && m.copies == 0 && !m.bounced {
			return ""
		}
		copies += m.copies
		if m.bounced {
			copies += 1 << 20
		}
	}
	return fmt.Sprint(copies)
}

// judge fails the test for every acknowledged mail lost, duplicated,
// misdelivered or bounced without its recipient's node being down past
// the retry window.
func (r *churnRun) judge() {
	r.mu.Lock()
	defer r.mu.Unlock()
	faults := 0
	lostAt := map[string]int{} // recipient node → mails lost
	fail := func(format string, args ...any) {
		if faults++; faults <= maxReported {
			r.t.Errorf(format, args...)
		}
	}
	for _, m := range r.sorted() {
		recipientDown := r.down[m.to.Node().Index] > r.plan.retryWindow
		switch {
		case len(m.wrongBox) > 0:
			fail("mail %s (%s → %s) is in the INBOX of %v", m.id, m.from.Name, m.to.Name, m.wrongBox)
		case m.copies > 1:
			fail("mail %s (%s → %s) arrived %d times", m.id, m.from.Name, m.to.Name, m.copies)
		case m.bounced && !recipientDown:
			fail("mail %s (%s on %s → %s on %s) bounced, its recipient's node was not down past the retry window",
				m.id, m.from.Name, m.from.Node().Name, m.to.Name, m.to.Node().Name)
		case m.bounced && m.copies > 0:
			fail("mail %s (%s → %s) bounced and arrived", m.id, m.from.Name, m.to.Name)
		case !m.acked.IsZero() && m.copies == 0 && !m.bounced:
			lostAt[m.to.Node().Name]++
			fail("mail %s (%s on %s → %s on %s), acknowledged at %s, LOST",
				m.id, m.from.Name, m.from.Node().Name, m.to.Name, m.to.Node().Name, m.acked.Format("15:04:05.000"))
		}
	}
	if faults > maxReported {
		r.t.Errorf("... and %d more mails lost, duplicated, misdelivered or bounced", faults-maxReported)
	}
	if len(lostAt) > 0 {
		r.t.Logf("mails lost, by recipient's node: %v", lostAt)
	}
}

// maxReported bounds the mails judge names one by one.
const maxReported = 30

func (r *churnRun) sorted() []*sentMail {
	var ms []*sentMail
	for _, m := range r.mails {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *sentMail) int { return strings.Compare(a.id, b.id) })
	return ms
}

// report logs delivered/lost/duplicated, the latency from 250 to the
// recipient's INBOX, and each node's traffic, disk and memory.
func (r *churnRun) report(ctx context.Context) {
	r.mu.Lock()
	var acked, delivered, lost, dups, bounced, unackedArrived int
	var lat []time.Duration
	for _, m := range r.mails {
		if m.acked.IsZero() {
			if m.copies > 0 {
				unackedArrived++
			}
			continue
		}
		acked++
		switch {
		case m.copies > 0:
			delivered++
			lat = append(lat, max(0, m.arrived.Sub(m.acked.Truncate(time.Second))))
		case m.bounced:
			bounced++
		default:
			lost++
		}
		dups += max(0, m.copies-1)
	}
	r.mu.Unlock()
	slices.Sort(lat)
	r.t.Logf("RESULT %d nodes, %d accounts: %d submissions, %d acknowledged; delivered %d, lost %d, duplicated %d, bounced %d; unacknowledged but delivered %d",
		r.plan.nodes, r.plan.accounts, len(r.mails), acked, delivered, lost, dups, bounced, unackedArrived)
	r.t.Logf("RESULT latency 250 → INBOX (1 s resolution): p50 %v, p99 %v, max %v", percentile(lat, 50), percentile(lat, 99), percentile(lat, 100))
	r.reportNodes(ctx)
}

func (r *churnRun) reportNodes(ctx context.Context) {
	var traffic, disk, rss []int64
	for _, n := range r.net.Nodes {
		if rx, tx, ok := n.Traffic(ctx); ok {
			traffic = append(traffic, int64(rx+tx))
		}
		disk = append(disk, n.DiskBytes())
		if b, err := n.PeakRSS(); err == nil {
			rss = append(rss, b)
		}
	}
	for _, s := range [][]int64{traffic, disk, rss} {
		slices.Sort(s)
	}
	mib := func(s []int64, p int) string {
		if len(s) == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f MiB", float64(s[min(len(s)-1, len(s)*p/100)])/(1<<20))
	}
	r.t.Logf("RESULT per node: network in+out p50 %s max %s; disk p50 %s max %s; peak RSS p50 %s max %s",
		mib(traffic, 50), mib(traffic, 100), mib(disk, 50), mib(disk, 100), mib(rss, 50), mib(rss, 100))
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// churnDir is where the nodes live: a test directory, or
// $ASMTP_TESTNET_KEEP (kept after the run, for the logs).
func churnDir(t *testing.T) string {
	if d := os.Getenv("ASMTP_TESTNET_KEEP"); d != "" {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Logf("nodes' directories kept in %s", d)
		return d
	}
	return t.TempDir()
}
