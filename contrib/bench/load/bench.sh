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

[ "$(id -u)" = 0 ] || { echo "bench.sh: run as root (throwaway Postfix/Dovecot)" >&2; exit 1; }
export PATH=$PATH:/usr/sbin:/sbin
for b in postfix postconf dovecot; do
  command -v "$b" >/dev/null || { echo "bench.sh: $b missing (apt-get install postfix dovecot-imapd dovecot-lmtpd)" >&2; exit 1; }
done
[ -x /usr/lib/dovecot/lmtp ] || { echo "bench.sh: Dovecot's LMTP server missing (apt-get install dovecot-lmtpd)" >&2; exit 1; }

tmp=$(mktemp -d -t asmtp-load.XXXXXX)
chmod 755 "$tmp"
net_pid="" dc_pid="" pf_started=false
cleanup() {
  rc=$?
  set +e
  if $pf_started; then postfix -c "$tmp/pf/etc" stop >/dev/null 2>&1; fi
  if [ -n "$dc_pid" ]; then kill "$dc_pid" 2>/dev/null; wait "$dc_pid" 2>/dev/null; fi
  if [ -n "$net_pid" ]; then kill -TERM -- "-$net_pid" 2>/dev/null; wait "$net_pid" 2>/dev/null; fi
  if [ "$rc" != 0 ]; then
    echo "bench.sh: failed (rc=$rc); last log lines:" >&2
    tail -n 5 "$tmp"/net/*/asmtpd.log "$tmp/pf/maillog" "$tmp/dc/dovecot.log" 2>/dev/null >&2
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # host port seconds
  for _ in $(seq $(($3 * 10))); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench.sh: nothing listening on $1:$2 after $3 s" >&2; return 1
}

echo "building ..." >&2
(cd "$root" && go build -o "$tmp/load" ./contrib/bench/load)

# --- ASMTP: three nodes on loopback -------------------------------------
mkdir -p "$tmp/net"
setsid "$root/contrib/local-network.sh" "$tmp/net" > "$tmp/net/out.txt" 2>&1 &
net_pid=$!
for _ in $(seq 1200); do
  grep -qs '^password:' "$tmp/net/c/bob.txt" && grep -qs '^password:' "$tmp/net/a/alice.txt" && break
  kill -0 "$net_pid" 2>/dev/null || { cat "$tmp/net/out.txt" >&2; exit 1; }
  sleep 0.1
done
get() { sed -n "s/^$2: //p" "$1" | head -n1; }
alice=$tmp/net/a/alice.txt bob=$tmp/net/c/bob.txt
wait_port 127.0.0.1 "$(get "$alice" smtp | sed 's/.*://')" 60
wait_port 127.0.0.1 "$(get "$bob" imap | sed 's/.*://')" 60

# --- Reference: Postfix → LMTP → Dovecot, which serves the Maildir -------
mail_uid=$(id -u dovecot) mail_gid=$(id -g dovecot)
mkdir -p "$tmp/mail" "$tmp/home/bob" "$tmp/dc/run" "$tmp/dc/state"
chown -R dovecot:dovecot "$tmp/mail" "$tmp/home"
dc_imap=$(free_port) dc_lmtp=$(free_port)
cat > "$tmp/dc/dovecot.conf" <<CONF
base_dir = $tmp/dc/run
state_dir = $tmp/dc/state
log_path = $tmp/dc/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 0
mail_location = maildir:$tmp/mail/%n
postmaster_address = postmaster@bench.test
default_internal_user = root
default_login_user = dovenull
default_internal_group = root
passdb {
  driver = static
  args = password=bench
}
userdb {
  driver = static
  args = uid=$mail_uid gid=$mail_gid home=$tmp/home/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $dc_imap
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $dc_lmtp
  }
  unix_listener lmtp {
    mode = 0600
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0600
  }
  unix_listener stats-writer {
    mode = 0600
  }
}
CONF
dovecot -F -c "$tmp/dc/dovecot.conf" 2> "$tmp/dc/stderr" &
dc_pid=$!
wait_port 127.0.0.1 "$dc_imap" 15
wait_port 127.0.0.1 "$dc_lmtp" 15

pf_port=$(free_port)
mkdir -p "$tmp/pf/etc" "$tmp/pf/queue" "$tmp/pf/data"
chown postfix "$tmp/pf/data"
cat > "$tmp/pf/etc/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $tmp/pf/queue
data_directory = $tmp/pf/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localhost
mydomain = localhost
myorigin = bench.localhost
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
message_size_limit = 52428800
virtual_mailbox_domains = bench.test
virtual_mailbox_maps = inline:{ bob@bench.test=bob }
virtual_transport = lmtp:inet:127.0.0.1:$dc_lmtp
maillog_file = $tmp/pf/maillog
maillog_file_prefixes = $tmp/pf
CONF
# Debian's master.cf with the public SMTP listener moved to our loopback
# port and no chroot (the queue is not under /var/spool/postfix).
awk -v port="$pf_port" '
  /^smtp[ \t]+inet/ { $1 = "127.0.0.1:" port }
  /^[a-z]/ && NF >= 8 && $5 == "y" { $5 = "n" }
  { print }' /etc/postfix/master.cf > "$tmp/pf/etc/master.cf"
postfix -c "$tmp/pf/etc" check >&2
postfix -c "$tmp/pf/etc" start >&2
pf_started=true
wait_port 127.0.0.1 "$pf_port" 15

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1), load average $(cut -d' ' -f1-3 /proc/loadavg); $(postconf -h mail_version 2>/dev/null | sed 's/^/Postfix /'), Dovecot $(dovecot --version | cut -d' ' -f1)"
"$tmp/load" -senders "$SENDERS" -mails "$MAILS" -size "$SIZE" \
  -ours-name asmtp -ours-smtp "$(get "$alice" smtp)" -ours-smtp-user "$(get "$alice" username)" \
  -ours-smtp-pass "$(get "$alice" password)" -ours-from "$(get "$alice" address)" -ours-to "$(get "$bob" address)" \
  -ours-imap "$(get "$bob" imap)" -ours-imap-user "$(get "$bob" username)" -ours-imap-pass "$(get "$bob" password)" \
  -ref-name postfix+dovecot-lmtp -ref-smtp "127.0.0.1:$pf_port" -ref-from alice@bench.localhost -ref-to bob@bench.test \
  -ref-imap "127.0.0.1:$dc_imap" -ref-imap-user bob -ref-imap-pass bench
