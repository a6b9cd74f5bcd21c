"""Second client of the IDLE test: MOVE one message and EXPUNGE another.

usage: move_expunge.py HOST PORT USER PASSWORD MOVE_UID EXPUNGE_UID
"""
import imaplib
import sys

host, port, user, password, move_uid, expunge_uid = sys.argv[1:7]
m = imaplib.IMAP4(host, int(port))
m.login(user, password)
m.select("INBOX")
typ, data = m.uid("MOVE", move_uid, "Archive")
assert typ == "OK", (typ, data)
typ, data = m.uid("STORE", expunge_uid, "+FLAGS", r"(\Deleted)")
assert typ == "OK", (typ, data)
typ, data = m.expunge()
assert typ == "OK", (typ, data)
print("expunged", data, flush=True)
m.logout()
