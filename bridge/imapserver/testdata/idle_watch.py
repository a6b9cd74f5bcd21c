"""IDLE watcher: logs in with imaplib, selects a mailbox and IDLEs, printing
every line the server pushes as "<unix time> <line>" until stdin closes, then
ends IDLE and logs out. Prints READY once the server has accepted IDLE.

usage: idle_watch.py HOST PORT USER PASSWORD MAILBOX
"""
import imaplib
import sys
import threading
import time

host, port, user, password, mailbox = sys.argv[1:6]
m = imaplib.IMAP4(host, int(port))
m.login(user, password)
typ, _ = m.select(mailbox)
assert typ == "OK", typ
m.send(b"W1 IDLE\r\n")
line = m.readline()
assert line.startswith(b"+"), line
print("READY", flush=True)


def stop():
    sys.stdin.read()
    m.send(b"DONE\r\n")


threading.Thread(target=stop, daemon=True).start()
while True:
    line = m.readline()
    if not line:
        sys.exit("connection closed during IDLE")
    print("%.6f %s" % (time.time(), line.decode(errors="replace").rstrip()), flush=True)
    if line.startswith(b"W1 "):
        break
m.logout()
print("DONE", flush=True)
