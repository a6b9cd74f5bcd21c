"""SORT, THREAD and subscriptions as Python's imaplib sends them, printing
the answers as JSON for the Go test to compare between servers.

usage: imaplib_sort.py HOST PORT USER PASSWORD
"""
import imaplib
import json
import sys

host, port, user, password = sys.argv[1:5]
out = {}
m = imaplib.IMAP4(host, int(port))
m.login(user, password)
caps = m.capability()[1][0].decode().split()
out["caps"] = [c for c in ("SORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "MULTIAPPEND", "CATENATE") if c in caps]
messages = [
    ("<a@x>", "Hello", "Mon, 1 Jan 2024 10:00:00 +0000", ""),
    ("<b@x>", "Re: Hello", "Tue, 2 Jan 2024 10:00:00 +0000", "<a@x>"),
    ("<c@x>", "Other", "Mon, 1 Jan 2024 09:00:00 +0000", ""),
    ("<d@x>", "Fwd: Other", "Wed, 3 Jan 2024 10:00:00 +0000", ""),
    ("<e@x>", "[list] Re: Hello", "Thu, 4 Jan 2024 10:00:00 +0000", "<b@x>"),
]
for i, (mid, subject, date, refs) in enumerate(messages):
    msg = "Message-ID: %s\r\nSubject: %s\r\nDate: %s\r\n" % (mid, subject, date)
    if refs:
        msg += "References: %s\r\n" % refs
    msg += "From: user%d@example.org\r\n\r\nbody %d\r\n" % (5 - i, i)
    m.append("INBOX", None, None, msg.encode())
m.select("INBOX")
out["sort_subject"] = m.sort("(SUBJECT)", "UTF-8", "ALL")[1][0].decode()
out["sort_reverse_date"] = m.sort("(REVERSE DATE)", "UTF-8", "ALL")[1][0].decode()
out["sort_from_seen"] = m.sort("(FROM)", "UTF-8", "UNSEEN")[1][0].decode()
out["uid_sort"] = m.uid("SORT", "(ARRIVAL)", "UTF-8", "2:4")[1][0].decode()
out["thread_references"] = m.thread("REFERENCES", "UTF-8", "ALL")[1][0].decode()
out["thread_subject"] = m.thread("ORDEREDSUBJECT", "UTF-8", "ALL")[1][0].decode()
out["uid_thread"] = m.uid("THREAD", "REFERENCES", "UTF-8", "ALL")[1][0].decode()
m.create("Lists")
m.create("Lists/go")
m.subscribe("Lists/go")
m.delete("Lists/go")
# Quoted or not, a name is the same (go-imap always quotes).
out["lsub"] = sorted(d.decode().replace('"', "") for d in m.lsub('""', "Lists*")[1] if d)
out["lsub_percent"] = sorted(d.decode().replace('"', "") for d in m.lsub('""', "%")[1] if d)
m.logout()
print(json.dumps(out))
