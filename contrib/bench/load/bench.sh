#!/usr/bin/env bash
# Sustained-load benchmark: 10 concurrent SMTP senders submit 5,000 mails
# of 10 KiB to one recipient; the rate is mails per second from the first
# 250 to the IMAP IDLE "* N EXISTS" announcing the last one. ASMTP runs on
# the three-node loopback network of contrib/local-network.sh (alice on A,
# relay B, bob on C); the reference, in the same run on the same machine,
# is a throwaway Postfix delivering over LMTP to a throwaway Dovecot that
# serves the recipient's Maildir over IMAP. Both must deliver every mail
# exactly once (checked by Subject) or the run fails.
#
#   contrib/bench/load/bench.sh
#   SENDERS=10 MAILS=5000 SIZE=10240 contrib/bench/load/bench.sh
#
# Needs root (throwaway Postfix and Dovecot with their own configuration
# under a temporary directory) and Debian's packages:
#   DEBIAN_FRONTEND=noninteractive apt-get install -y postfix dovecot-imapd dovecot-lmtpd
# Stops everything it started and removes its temporary directory (KEEP=1
# keeps it, for the logs).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
SENDERS=${SENDERS:-10} MAILS=${MAILS:-5000} SIZE=${SIZE:-10240}
# shellcheck source=../reference.sh
. "$root/contrib/bench/reference.sh"
bench_init load lmtp

echo "building ..." >&2
(cd "$root" && go build -o "$tmp/load" ./contrib/bench/load)
start_asmtp_network
start_dovecot lmtp
start_postfix lmtp
mapfile -t ours < <(ours_args)

machine_line
"$tmp/load" -senders "$SENDERS" -mails "$MAILS" -size "$SIZE" "${ours[@]}" \
  -ref-name postfix+dovecot-lmtp -ref-smtp "127.0.0.1:$pf_port" -ref-from alice@bench.localhost -ref-to bob@bench.test \
  -ref-imap "127.0.0.1:$dc_imap" -ref-imap-user bob -ref-imap-pass bench
