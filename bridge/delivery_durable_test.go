package bridge

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asmtp/asmtp/asmtp/node"
	"github.com/asmtp/asmtp/asmtp/topic"
	"github.com/asmtp/asmtp/bridge/accounts"
	"github.com/asmtp/asmtp/bridge/accounts/accountstest"
	"github.com/asmtp/asmtp/bridge/outbound"
	"github.com/asmtp/asmtp/internal/wait"
	"github.com/asmtp/asmtp/mailstore"
)

// sendMails sends one message per subject from alice with smtplib and
// returns the bytes sent, by subject.
func sendMails(t testing.TB, a *site, password, from, to string, text string, subjects ...string) map[string][]byte {
	t.Helper()
	var specs []map[string]any
	for _, s := range subjects {
		specs = append(specs, map[string]any{"envelope": from, "from": from, "to": []string{to}, "subject": s, "text": text})
	}
	f := filepath.Join(t.TempDir(), "spec.json")
	data, _ := json.Marshal(specs)
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	host, port := hostPort(a.bridge.SMTPAddr())
	python(t, "send", host, port, "alice", password, f, out)
	sent := make(map[string][]byte)
	for i, s := range subjects {
		raw, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.eml", i)))
		if err != nil {
			t.Fatal(err)
		}
		sent[s] = raw
	}
	return sent
}

// countSubjects counts an INBOX's messages by subject.
func countSubjects(t testing.TB, msgs [][]byte) map[string]int {
	n := make(map[string]int)
	for _, m := range msgs {
		n[header(t, m, "Subject")]++
	}
	return n
}

// TestRecipientNodeOffline: mail sent while bob's node is down reaches him,
// once each, when it comes back.
func TestRecipientNodeOffline(t *testing.T) {
	relay := startRelay(t)
	a, c := newSite(t, relay), newSite(t, relay)
	alice, pw := a.AddAccount(t, "alice")
	bob, _ := c.AddAccount(t, "bob")
	befriend(t, a, "alice", "Alice", c, "bob", "Bob")
	a.start()
	c.start()
	a.waitHolder(t, "alice", "Bob")
	from, to := alice.Address("asmtp").String(), bob.Address("asmtp").String()
	sendMails(t, a, pw, from, to, "hi\n", "before")
	wait.Until(t, 30*time.Second, "the first mail", func() bool { return c.inboxCount("bob") == 1 }, a.stats, c.stats)

	c.stop()
	big := strings.Repeat("Forty-two bytes of text in every line.\r\n", 11500) // 8 chunks, two batches
	subjects := []string{"offline 1", "offline 2", "offline 3", "offline 4", "offline 5"}
	sent := sendMails(t, a, pw, from, to, "while bob is away\n", subjects...)
	for s, raw := range sendMails(t, a, pw, from, to, big, "offline big") {
		sent[s] = raw
	}
	wait.Until(t, 10*time.Second, "alice's outbox empty", func() bool {
		q, err := a.Mail.Outbox(context.Background(), "alice")
		return err == nil && len(q) == 0
	})

	c.start()
	want := 1 + len(sent)
	wait.Until(t, 30*time.Second, "the mail sent while bob was offline", func() bool { return c.inboxCount("bob") >= want },
		func() string { return subjects2(t, c) }, a.stats, c.stats)
	time.Sleep(time.Second) // anything extra would arrive now
	msgs := c.inbox("bob")
	counts := countSubjects(t, msgs)
	if len(msgs) != want {
		t.Errorf("bob has %d mails, want %d: %v", len(msgs), want, counts)
	}
	for s := range sent {
		if counts[s] != 1 {
			t.Errorf("%q arrived %d times, want once", s, counts[s])
		}
	}
	for _, m := range msgs {
		if s := header(t, m, "Subject"); sent[s] != nil && string(body(m)) != string(body(sent[s])) {
			t.Errorf("%q: body changed on the way", s)
		}
	}
}

func subjects2(t testing.TB, s *site) string { return subjects(t, s.inbox("bob")) }

// Crash points of TestOutboxSurvivesCrash: the hook stage at which the
// sending process is killed, and after how many chunks.
var crashPoints = []struct {
	name  string
	stage string
	chunk int
}{
	{"acknowledged, nothing published", "start", 0},
	{"one batch of two published", "published", outbound.PublishBatchChunks},
	{"every chunk published, outbox not yet updated", "sent", 2 * outbound.PublishBatchChunks},
}

// crashHelper is TestOutboxCrashHelper running in a child process, with
// the lines it prints.
type crashHelper struct {
	cmd   *exec.Cmd
	lines chan string
}

// startCrashHelper runs TestOutboxCrashHelper with cfg in a child process,
// killed when the test ends if it was not before.
func startCrashHelper(t *testing.T, cfg crashHelperConfig) *crashHelper {
	t.Helper()
	env, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestOutboxCrashHelper$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+string(env))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &crashHelper{cmd: cmd, lines: make(chan string, 64)}
	t.Cleanup(h.kill)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	return h
}

// next waits up to 30 s for a line of the helper that starts with prefix.
func (h *crashHelper) next(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				t.Fatalf("the helper exited before %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %q from the helper within 30 s", prefix)
		}
	}
}

// kill kills the helper with SIGKILL, as a crash would, and waits for it.
func (h *crashHelper) kill() {
	h.cmd.Process.Kill()
	h.cmd.Wait()
}

// crashHelperEnv makes TestOutboxCrashHelper run alice's site and wait to
// be killed at a crash point.
const crashHelperEnv = "ASMTP_BRIDGE_OUTBOX_CRASH"

type crashHelperConfig struct {
	Dir, Seed string
	Peer      node.Peer
	Stage     string
	Chunk     int
	// WaitHolders lists the (account, contact) pairs whose topic holder
	// the helper's node must know before it prints its SMTP address.
	WaitHolders [][2]string
	NamingV2    bool // the site speaks naming v2
}

// TestOutboxCrashHelper is the process TestOutboxSurvivesCrash kills.
func TestOutboxCrashHelper(t *testing.T) {
	env := os.Getenv(crashHelperEnv)
	if env == "" {
		t.Skip("run by TestOutboxSurvivesCrash")
	}
	var cfg crashHelperConfig
	if err := json.Unmarshal([]byte(env), &cfg); err != nil {
		t.Fatal(err)
	}
	seed, err := hex.DecodeString(cfg.Seed)
	if err != nil {
		t.Fatal(err)
	}
	s := &site{Env: &accountstest.Env{Dir: cfg.Dir, NodeKey: ed25519.NewKeyFromSeed(seed)}, t: t, peers: []node.Peer{cfg.Peer}, delivery: testDelivery(), namingV2: cfg.NamingV2}
	s.Reg, s.Mail = accountstest.OpenStores(t, cfg.Dir)
	s.delivery.hook = func(stage string, _ mailstore.OutboxItem, chunk int) {
		if stage == cfg.Stage && chunk >= cfg.Chunk {
			fmt.Println("crash point")
			select {} // killed here
		}
	}
	s.start()
	for _, w := range cfg.WaitHolders {
		s.waitHolder(t, w[0], w[1])
	}
	fmt.Println("smtp", s.bridge.SMTPAddr())
	select {}
}

// TestOutboxSurvivesCrash kills alice's asmtpd (SIGKILL) after her mail
// was acknowledged with 250, at points before, during and after
// publishing; started again on the same files, it delivers the mail, and
// bob gets it exactly once: every attempt reuses the message id kept in the
// outbox, so repeats are dropped by his replay check.
func TestOutboxSurvivesCrash(t *testing.T) {
	for _, cp := range crashPoints {
		t.Run(cp.name, func(t *testing.T) {
			ctx := context.Background()
			c := newSite(t)
			bob, _ := c.AddAccount(t, "bob")
			c.start()
			a := newSite(t, c.peer())
			alice, pw := a.AddAccount(t, "alice")
			befriend(t, a, "alice", "Alice", c, "bob", "Bob")
			from, to := alice.Address("asmtp").String(), bob.Address("asmtp").String()

			h := startCrashHelper(t, crashHelperConfig{Dir: a.Dir, Seed: hex.EncodeToString(a.NodeKey.Seed()), Peer: c.peer(), Stage: cp.stage, Chunk: cp.chunk,
				WaitHolders: [][2]string{{"alice", "Bob"}}})
			addr := strings.TrimPrefix(h.next(t, "smtp "), "smtp ") // printed once alice's node knows bob's

			host, port, _ := strings.Cut(addr, ":")
			big := strings.Repeat("Forty-two bytes of text in every line.\r\n", 11500) // 8 chunks, two batches
			specs, _ := json.Marshal([]map[string]any{{"envelope": from, "from": from, "to": []string{to}, "subject": "survives", "text": big}})
			specFile := filepath.Join(t.TempDir(), "spec.json")
			os.WriteFile(specFile, specs, 0o600)
			out := t.TempDir()
			python(t, "send", host, port, "alice", pw, specFile, out) // fails unless 250
			sent, _ := os.ReadFile(filepath.Join(out, "0.eml"))
			h.next(t, "crash point")
			if cp.stage == "sent" { // bob has it already; the retry after the crash is a replay
				wait.Until(t, 30*time.Second, "bob's copy before the crash", func() bool { return c.inboxCount("bob") == 1 })
			}
			h.kill()

			if q, err := a.Mail.Outbox(ctx, "alice"); err != nil || len(q) != 1 {
				t.Fatalf("after the crash the outbox holds %+v, %v; want the acknowledged mail", q, err)
			}
			a.start()
			wait.Until(t, 30*time.Second, "alice's outbox empty after the restart", func() bool {
				q, err := a.Mail.Outbox(ctx, "alice")
				return err == nil && len(q) == 0
			}, a.stats, c.stats)
			tp := topic.Derive(accountstest.OwnSharedKey(t, alice), accountstest.OwnSharedKey(t, bob))
			published := map[string]int{"start": 8, "published": 8 + outbound.PublishBatchChunks, "sent": 16}[cp.stage]
			wait.Until(t, 30*time.Second, "bob's mail", func() bool { return c.inboxCount("bob") >= 1 && storedOn(t, c, bob, tp) >= published-cp.chunk },
				func() string { return fmt.Sprintf("%d chunks stored", storedOn(t, c, bob, tp)) }, a.stats, c.stats)
			if cp.stage == "sent" {
				wait.Until(t, 30*time.Second, "the repeated chunks at bob's node", func() bool { return storedOn(t, c, bob, tp) == published })
			}
			time.Sleep(time.Second) // a duplicate would arrive now
			msgs := c.inbox("bob")
			if len(msgs) != 1 {
				t.Fatalf("bob has %d copies, want exactly 1 (%s)", len(msgs), subjects(t, msgs))
			}
			if string(body(msgs[0])) != string(body(sent)) {
				t.Error("the body changed on the way")
			}
			t.Logf("%d chunks reached bob's node for a 4-chunk mail; bob has 1 copy", storedOn(t, c, bob, tp))
		})
	}
}

// storedOn counts the topic messages on t stored for user a at site s.
func storedOn(t testing.TB, s *site, a accounts.Account, tp topic.Topic) int {
	t.Helper()
	sess, err := s.node.Attach(a.Device)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	msgs, err := sess.Query(context.Background(), tp, 0)
	if err != nil {
		return 0
	}
	return len(msgs)
}
