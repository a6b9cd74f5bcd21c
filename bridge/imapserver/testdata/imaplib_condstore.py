"""Thunderbird's CONDSTORE resynchronisation with Python's imaplib: a
client remembers HIGHESTMODSEQ, another client changes flags, and the first
comes back with one SELECT INBOX (CONDSTORE) and one
FETCH 1:* (FLAGS) (CHANGEDSINCE m). Prints the FETCH responses it got as
JSON for the Go test to count.

usage: imaplib_condstore.py HOST PORT USER PASSWORD
"""
import imaplib
import json
import re
import sys

host, port, user, password = sys.argv[1:5]


def select_condstore(m):
    """SELECT INBOX (CONDSTORE); imaplib's select() takes no parameters."""
    typ, data = m._simple_command("SELECT", "INBOX (CONDSTORE)")
    assert typ == "OK", (typ, data)
    m.state = "SELECTED"
    highest = m.response("HIGHESTMODSEQ")[1][0]
    return int(highest)


out = {}
a = imaplib.IMAP4(host, int(port))
a.login(user, password)
out["capabilities"] = sorted(a.capability()[1][0].decode().split())
out["modseq_before"] = select_condstore(a)
a.logout()

b = imaplib.IMAP4(host, int(port))
b.login(user, password)
b.select("INBOX")
b.store("3,7", "+FLAGS", r"(\Flagged)")
b.store("10", "+FLAGS", "($Label)")
b.logout()

a = imaplib.IMAP4(host, int(port))
a.login(user, password)
out["modseq_after"] = select_condstore(a)
typ, data = a._simple_command("FETCH", "1:*", "(FLAGS)", "(CHANGEDSINCE %d)" % out["modseq_before"])
assert typ == "OK", (typ, data)
fetches = []
for line in a.response("FETCH")[1]:
    if line is None:
        continue
    line = line.decode()
    seq = int(line.split()[0])
    flags = re.search(r"FLAGS \(([^)]*)\)", line).group(1).split()
    modseq = int(re.search(r"MODSEQ \((\d+)\)", line).group(1))
    fetches.append({"seq": seq, "flags": flags, "modseq": modseq})
out["fetches"] = fetches
a.logout()
print(json.dumps(out))
