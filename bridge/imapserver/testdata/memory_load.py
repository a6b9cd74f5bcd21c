"""Concurrent large APPENDs or SEARCH BODYs, for the memory tests.

usage: memory_load.py HOST PORT USER PASSWORD append CLIENTS SIZE
       memory_load.py HOST PORT USER PASSWORD search CLIENTS WORD
       memory_load.py HOST PORT USER PASSWORD fetch CLIENTS UID

Every client logs in first; then all start their command together.
Prints "appended N" (successful APPENDs, then the answers that were not
OK) or "found M in N" (the smallest number of matches among N searches).
"""
import imaplib
import sys
import threading

host, port, user, password, mode, clients, arg = sys.argv[1:8]
port, clients = int(port), int(clients)

conns = []
for _ in range(clients):
    m = imaplib.IMAP4(host, port)
    m.login(user, password)
    if mode in ("search", "fetch"):
        m.select("INBOX", readonly=True)
    conns.append(m)

if mode == "append":
    size = int(arg)
    line = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod\r\n"
    body = line * (size // len(line) - 2)
    msgs = [b"From: bob@example.org\r\nSubject: big %d\r\n\r\n" % i + body for i in range(clients)]

start = threading.Barrier(clients)
results = [None] * clients


def work(i):
    m = conns[i]
    start.wait()
    try:
        if mode == "append":
            results[i] = m.append("INBOX", None, None, msgs[i])
        elif mode == "search":
            results[i] = m.uid("SEARCH", "BODY", arg)
        else:
            typ, data = m.uid("FETCH", "%d:*" % (i % 8 + 1), "(BODY.PEEK[])")
            size = sum(len(d[1]) for d in data if isinstance(d, tuple))
            results[i] = (typ, [size])
    except Exception as e:  # a NO answer or a dropped connection
        results[i] = ("ERR", [str(e).encode()])


threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for m in conns:
    try:
        m.logout()
    except Exception:
        pass

if mode == "append":
    ok = sum(1 for typ, _ in results if typ == "OK")
    print("appended %d" % ok, [r for r in results if r[0] != "OK"][:3])
elif mode == "fetch":
    sizes = [data[0] if typ == "OK" else 0 for typ, data in results]
    print("fetched %d bytes at least" % min(sizes), [r for r in results if r[0] != "OK"][:3])
else:
    counts = [len(data[0].split()) if typ == "OK" and data[0] else 0 for typ, data in results]
    print("found %d in %d" % (min(counts), clients), [r for r in results if r[0] != "OK"][:3])
