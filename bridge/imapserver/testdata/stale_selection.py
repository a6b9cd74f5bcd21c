"""The cross-account attack of a stale selection (issue 9, item 1).

usage: stale_selection.py HOST PORT ALICE_PASSWORD VICTIM VICTIM_PASSWORD VICTIM_MAILBOX

Alice selects a mailbox of hers and deletes it from a second connection.
The script then prints READY and waits for a line on stdin (the test may
create the victim's account meanwhile). The victim fills VICTIM_MAILBOX
(created unless it is INBOX) with three messages flagged \\Deleted. Alice's
first connection, still "selected", searches and expunges: it must see
nothing of the victim's, and the victim must keep the three messages.
"""
import imaplib
import sys

host, port, alice_pw, victim, victim_pw, victim_box = sys.argv[1:7]
port = int(port)


def ok(typ, data, what):
    assert typ == "OK", (what, typ, data)
    return data


stale = imaplib.IMAP4(host, port)
ok(*stale.login("alice", alice_pw), "alice login")
ok(*stale.create("zz"), "create zz")
ok(*stale.select("zz"), "select zz")
other = imaplib.IMAP4(host, port)
ok(*other.login("alice", alice_pw), "alice second login")
ok(*other.delete("zz"), "delete zz")
other.logout()
print("READY", flush=True)
sys.stdin.readline()

bob = imaplib.IMAP4(host, port)
ok(*bob.login(victim, victim_pw), "victim login")
if victim_box != "INBOX":
    ok(*bob.create(victim_box), "victim create")
for i in range(3):
    msg = ("From: %s@example.org\r\nSubject: private %d\r\n\r\nthe password is hunter2\r\n" % (victim, i)).encode()
    ok(*bob.append(victim_box, r"(\Deleted)", None, msg), "victim append")

leaks = []
for args in (("SEARCH", "ALL"), ("SEARCH", "BODY", "hunter2"), ("FETCH", "1:*", "(BODY.PEEK[])")):
    try:
        typ, data = stale.uid(*args)
    except imaplib.IMAP4.error as e:  # a NO or BAD answer
        print("UID %s: refused: %s" % (" ".join(args), e), flush=True)
        continue
    print("UID %s: %s %r" % (" ".join(args), typ, data), flush=True)
    if typ == "OK" and any(d and d != b"" for d in data if not isinstance(d, tuple)) or any(isinstance(d, tuple) for d in data):
        leaks.append((args, data))
try:
    typ, data = stale.expunge()
    print("EXPUNGE:", typ, data, flush=True)
except imaplib.IMAP4.error as e:
    print("EXPUNGE: refused:", e, flush=True)

ok(*bob.noop(), "victim noop")
typ, data = bob.select(victim_box)
ok(typ, data, "victim select")
kept = int(data[0])
print("victim keeps", kept, flush=True)
assert not leaks, "alice's stale session saw the victim's mail: %r" % leaks
assert kept == 3, "the victim keeps %d of 3 messages" % kept
print("PASS", flush=True)
