"""A whole mail-client session with Python's imaplib, printing what the
server answered as JSON for the Go test to check.

usage: imaplib_session.py HOST PORT USER PASSWORD
"""
import imaplib
import json
import re
import sys

host, port, user, password = sys.argv[1:5]
out = {}
m = imaplib.IMAP4(host, int(port))
out["login"] = m.login(user, password)[0]
out["capabilities"] = sorted(m.capability()[1][0].decode().split())
typ, data = m.list()
out["list"] = [d.decode() for d in data]
out["create"] = m.create("Projects/2024")[0]
out["list_projects"] = [d.decode() for d in m.list('""', "Projects*")[1]]

msg = (b"From: Carol <carol@example.org>\r\nTo: alice@example.org\r\nSubject: imaplib test\r\n"
       b"Date: Tue, 05 Mar 2024 10:00:00 +0000\r\nMessage-ID: <imaplib@test>\r\n\r\nHello from imaplib, needle42.\r\n")
typ, data = m.append("INBOX", r"(\Seen $Label)", imaplib.Time2Internaldate(1709632800), msg)
out["append"] = [typ, data[0].decode()]
typ, data = m.select("INBOX")
out["select"] = [typ, data[0].decode()]
typ, data = m.uid("SEARCH", None, "TEXT", "needle42")
out["search"] = data[0].decode()
uid = data[0].split()[-1]
typ, data = m.uid("FETCH", uid, "(FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)")
out["fetch_meta"] = data[0].decode()
typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
out["body_exact"] = data[0][1] == msg
out["size"] = len(msg)
typ, data = m.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
out["header_fields"] = data[0][1].decode()
typ, data = m.uid("STORE", uid, "+FLAGS", r"(\Flagged)")
out["store"] = data[0].decode()
typ, data = m.uid("COPY", uid, "Projects/2024")
out["copy"] = [typ, m.untagged_responses.get("COPYUID", [b""])[-1].decode() if "COPYUID" in m.untagged_responses else ""]
typ, data = m.uid("MOVE", uid, "Archive")
out["move"] = typ
typ, data = m.status("Projects/2024", "(MESSAGES UNSEEN UIDNEXT)")
out["status_projects"] = data[0].decode()
typ, data = m.status("Archive", "(MESSAGES)")
out["status_archive"] = data[0].decode()
typ, data = m.select("Archive")
typ, data = m.fetch("1", "(FLAGS)")
out["archive_flags"] = data[0].decode()
m.store("1", "+FLAGS", r"(\Deleted)")
typ, data = m.expunge()
out["expunge"] = [typ, [d.decode() for d in data if d]]
m.close()
out["rename"] = m.rename("Projects/2024", "Projects/Done")[0]
out["delete_parent"] = m.delete("Projects")[0]
out["delete_child"] = m.delete("Projects/Done")[0]
out["select_missing"] = m.select("Nope")[0]
out["logout"] = m.logout()[0]
print(json.dumps(out))
