"""Attacks on a running bridge, with Python's own mail clients.

Each subcommand prints one JSON object on stdout; the Go tests
(attack_test.go) judge the figures. Addresses are "host:port".

  logins IMAP USER N            N concurrent wrong LOGINs, one connection each
  guess IMAP VICTIM ATTACKER APW OWNERPW SECONDS THREADS
                                guesses at VICTIM from rotating 127.x sources,
                                a good login as ATTACKER every 4th try; the
                                owner logs in with OWNERPW every few seconds
  timing IMAP KNOWN,KNOWN... N  N pairs of wrong LOGINs, at a known name and
                                at an unknown one; medians and the median of
                                the pairs' time ratios
  idle IMAP SMTP N USER PW      N idle connections to each server, then a real
                                login on each; how long it took
"""
import imaplib
import json
import random
import smtplib
import socket
import statistics
import sys
import threading
import time


def hp(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


class IMAPFrom(imaplib.IMAP4):
    """imaplib.IMAP4 connecting from a chosen source address."""

    def __init__(self, addr, source="127.0.0.1", timeout=30):
        self.source = source
        super().__init__(*hp(addr), timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))


def login(addr, user, pw, source="127.0.0.1"):
    """One LOGIN on a new connection: "ok", "failed" (the password was
    checked and wrong), "unavailable" (refused unchecked) or "error"."""
    try:
        m = IMAPFrom(addr, source)
    except OSError as e:
        return "error: %s" % e
    try:
        m.login(user, pw)
        m.logout()
        return "ok"
    except imaplib.IMAP4.error as e:
        text = str(e)
        if "AUTHENTICATIONFAILED" in text:
            return "failed"
        if "UNAVAILABLE" in text:
            return "unavailable"
        return "error: " + text
    except OSError as e:
        return "error: %s" % e
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


def random_loopback():
    return "127.%d.%d.%d" % (random.randint(0, 255), random.randint(0, 255), random.randint(1, 254))


def cmd_logins(addr, user, n):
    results = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def one(i):
        start.wait()
        r = login(addr, user, "wrong password %d" % i)
        with lock:
            results.append(r.split(":")[0])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {k: results.count(k) for k in set(results)}


def cmd_guess(addr, victim, attacker, apw, owner_pw, seconds, nthreads):
    counts = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def attack(k):
        i = 0
        while time.monotonic() < stop:
            i += 1
            if i % 5 == 0:  # a good login every 4 guesses
                r = login(addr, attacker, apw, random_loopback())
                key = "attacker_" + r.split(":")[0]
            else:
                r = login(addr, victim, "guess %d-%d" % (k, i), random_loopback())
                key = "victim_" + r.split(":")[0]
            with lock:
                counts[key] = counts.get(key, 0) + 1

    threads = [threading.Thread(target=attack, args=(k,)) for k in range(nthreads)]
    for t in threads:
        t.start()
    owner = []
    while time.monotonic() < stop - 2:
        time.sleep(3)
        t0 = time.monotonic()
        r = login(addr, victim, owner_pw)
        owner.append({"result": r, "seconds": round(time.monotonic() - t0, 3)})
    for t in threads:
        t.join()
    return {"counts": counts, "owner": owner}


def timed_login(addr, user, pw):
    m = IMAPFrom(addr)
    try:
        t0 = time.perf_counter()
        try:
            m.login(user, pw)
            r = "ok"
        except imaplib.IMAP4.error as e:
            r = "failed" if "AUTHENTICATIONFAILED" in str(e) else str(e)
        return r, time.perf_counter() - t0
    finally:
        m.shutdown()


def cmd_timing(addr, known, n, pace=0.3):
    """n pairs of wrong LOGINs, one at a known name and one at an unknown
    name, back to back in ABBA order; the ratio of each pair's times
    cancels the load of the machine, which moves slower than a pair.
    Attempts are paced beyond the bridge's per-source penalty (at most
    250 ms between checks from one source), and each known name is used
    every few pairs (its own penalty is at most 1 s), so no penalty wait is
    in a time."""
    times = {"known": [], "unknown": []}
    ratios = []
    other = []
    for i in range(n):
        pair = {}
        for kind in ("known", "unknown") if i % 2 == 0 else ("unknown", "known"):
            t0 = time.monotonic()
            user = known[i % len(known)] if kind == "known" else "nobody%06d" % random.randint(0, 999999)
            r, d = timed_login(addr, user, "wrong password")
            if r == "failed":
                times[kind].append(d)
                pair[kind] = d
            else:
                other.append(r)
            time.sleep(max(0, pace - (time.monotonic() - t0)))
        if len(pair) == 2:
            ratios.append(pair["known"] / pair["unknown"])
    med = {k: statistics.median(v) * 1000 for k, v in times.items() if v}
    low = {k: statistics.quantiles(v, n=10)[0] * 1000 for k, v in times.items() if len(v) > 1}
    return {"median_ms": med, "p10_ms": low, "median_ratio": statistics.median(ratios) if ratios else 0,
            "pairs": len(ratios), "other": other}


def cmd_idle(imap_addr, smtp_addr, n, user, pw):
    held = []
    for addr in (imap_addr, smtp_addr):
        for _ in range(n):
            held.append(socket.create_connection(hp(addr), 10))
    out = {}
    t0 = time.monotonic()
    m = imaplib.IMAP4(*hp(imap_addr), timeout=10)
    m.login(user, pw)
    out["imap_seconds"] = round(time.monotonic() - t0, 3)
    m.logout()
    t0 = time.monotonic()
    s = smtplib.SMTP(*hp(smtp_addr), timeout=10)
    s.login(user, pw)
    out["smtp_seconds"] = round(time.monotonic() - t0, 3)
    s.quit()
    # How many of the strangers' connections are still open: the reserve
    # closed the oldest ones to make room.
    out["idle_open_at_end"] = sum(still_open(c) for c in held)
    for c in held:
        c.close()
    return out


def still_open(c):
    """Whether the server has not closed c: reads what is there until the
    socket would block (open) or ends (closed)."""
    c.setblocking(False)
    try:
        while c.recv(1 << 16):
            pass
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def cmd_submit(smtp_addr, imap_addr, user, pw, n, mib, to_user, to_pw, address):
    """n concurrent submissions of mib MiB from user to address, the
    address of account to_user (password to_pw) of the same bridge, then
    waits until all n are in its INBOX."""
    body = ("x" * 76 + "\r\n") * (mib * 1024 * 1024 // 78)
    errors = []

    def one(i):
        try:
            host, port = hp(smtp_addr)
            s = smtplib.SMTP(host, port, timeout=300)
            s.login(user, pw)
            s.sendmail(address, [address], f"From: {address}\r\nTo: {address}\r\nSubject: big {i}\r\n\r\n" + body)
            s.quit()
        except Exception as e:  # noqa: BLE001 - reported to the test
            errors.append(repr(e))

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    host, port = hp(imap_addr)
    deadline = time.time() + 240
    count = 0
    while time.time() < deadline:
        c = imaplib.IMAP4(host, port)
        c.login(to_user, to_pw)
        typ, data = c.status("INBOX", "(MESSAGES)")
        c.logout()
        count = int(data[0].split()[-1].strip(b")"))
        if count >= n:
            break
        time.sleep(0.5)
    return {"submitted": n - len(errors), "errors": errors[:3], "inbox": count}


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "logins":
        out = cmd_logins(args[0], args[1], int(args[2]))
    elif cmd == "guess":
        out = cmd_guess(args[0], args[1], args[2], args[3], args[4], float(args[5]), int(args[6]))
    elif cmd == "timing":
        out = cmd_timing(args[0], args[1].split(","), int(args[2]))
    elif cmd == "submit":
        out = cmd_submit(args[0], args[1], args[2], args[3], int(args[4]), int(args[5]), args[6], args[7], args[8])
    elif cmd == "idle":
        out = cmd_idle(args[0], args[1], int(args[2]), args[3], args[4])
    else:
        sys.exit("unknown command " + cmd)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
