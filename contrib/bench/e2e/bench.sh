#!/usr/bin/env bash
# End-to-end latency benchmark: SMTP DATA end → IMAP IDLE EXISTS at the
# recipient, ASMTP's three-node loopback network (contrib/local-network.sh)
# side by side with Postfix → Dovecot on the same machine (Debian's postfix
# and dovecot-imapd; Postfix's virtual(8) Maildir delivery, Dovecot serving
# that Maildir over IMAP). Everything listens on 127.0.0.1 only.
#
# Note on the reference: Dovecot batches mailbox change notifications with a
# fixed, unconfigurable 500 ms timer (NOTIFY_DELAY_MSECS in its
# mailbox-watch.c), so its IDLE EXISTS latency is ~0.5 s regardless of the
# MTA. The program therefore also reports "postfix→maildir": the time from
# the 250 to the file appearing in the Maildir's new/ (inotify), i.e.
# Postfix's delivery without the IMAP notification path.
#
#   contrib/bench/e2e/bench.sh                 # 200 × 10 KiB and 200 × 1 MiB
#   SIZES=10240:200,1048576:50 contrib/bench/e2e/bench.sh
#
# Needs root (Postfix and Dovecot are started as throwaway instances with
# their own config under a temporary directory) and the two packages:
#   DEBIAN_FRONTEND=noninteractive apt-get install -y postfix dovecot-imapd
# Exits non-zero on failure; stops everything it started and removes its
# temporary directory (KEEP=1 keeps it, for the logs).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
SIZES=${SIZES:-10240:200,1048576:200}
# shellcheck source=../reference.sh
. "$root/contrib/bench/reference.sh"
bench_init e2e

echo "building ..." >&2
(cd "$root" && go build -o "$tmp/e2e" ./contrib/bench/e2e)
start_asmtp_network
start_dovecot
start_postfix maildir
mapfile -t ours < <(ours_args)

args=(
  "${ours[@]}"
  -ref-name postfix+dovecot -ref-smtp "127.0.0.1:$pf_port" -ref-from alice@bench.localhost -ref-to bob@bench.test
  -ref-imap "127.0.0.1:$dc_imap" -ref-imap-user bob -ref-imap-pass bench -ref-maildir-new "$tmp/mail/bob/new"
  -sizes "$SIZES"
)
echo "waiting for a probe mail alice → bob on both systems (the overlay needs a few seconds) ..." >&2
"$tmp/e2e" "${args[@]}" -probe-only >&2
machine_line
"$tmp/e2e" "${args[@]}" -warmup 1
