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

[ "$(id -u)" = 0 ] || { echo "bench.sh: run as root (throwaway Postfix/Dovecot)" >&2; exit 1; }
for b in postfix postconf dovecot; do
  command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || { echo "bench.sh: $b missing (apt-get install postfix dovecot-imapd)" >&2; exit 1; }
done
export PATH=$PATH:/usr/sbin:/sbin

tmp=$(mktemp -d -t asmtp-e2e.XXXXXX)
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
(cd "$root" && go build -o "$tmp/e2e" ./contrib/bench/e2e)

# --- ASMTP: three nodes on loopback -------------------------------------
mkdir -p "$tmp/net"
setsid "$root/contrib/local-network.sh" "$tmp/net" > "$tmp/net/out.txt" 2>&1 &
net_pid=$!
for _ in $(seq 1200); do
  [ -s "$tmp/net/c/bob.txt" ] && grep -q '^password:' "$tmp/net/c/bob.txt" && grep -q '^password:' "$tmp/net/a/alice.txt" 2>/dev/null && break
  kill -0 "$net_pid" 2>/dev/null || { cat "$tmp/net/out.txt" >&2; exit 1; }
  sleep 0.1
done
get() { sed -n "s/^$2: //p" "$1" | head -n1; }
alice=$tmp/net/a/alice.txt bob=$tmp/net/c/bob.txt
wait_port 127.0.0.1 "$(get "$alice" smtp | sed 's/.*://')" 60
wait_port 127.0.0.1 "$(get "$bob" imap | sed 's/.*://')" 60

# --- Reference: Dovecot serving a Maildir that Postfix delivers into ------
mail_uid=$(id -u dovecot) mail_gid=$(id -g dovecot)
mkdir -p "$tmp/mail/bob"/{cur,new,tmp} "$tmp/home/bob" "$tmp/dc/run" "$tmp/dc/state"
chown -R dovecot:dovecot "$tmp/mail" "$tmp/home"
chmod -R 755 "$tmp/mail" "$tmp/home"
dc_port=$(free_port)
cat > "$tmp/dc/dovecot.conf" <<EOF
base_dir = $tmp/dc/run
state_dir = $tmp/dc/state
log_path = $tmp/dc/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 0
mail_location = maildir:$tmp/mail/%u
default_internal_user = root
default_login_user = dovenull
default_internal_group = root
passdb {
  driver = static
  args = password=bench
}
userdb {
  driver = static
  args = uid=$mail_uid gid=$mail_gid home=$tmp/home/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $dc_port
  }
  inet_listener imaps {
    port = 0
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
EOF
dovecot -F -c "$tmp/dc/dovecot.conf" 2> "$tmp/dc/stderr" &
dc_pid=$!
wait_port 127.0.0.1 "$dc_port" 15

pf_port=$(free_port)
mkdir -p "$tmp/pf/etc" "$tmp/pf/queue" "$tmp/pf/data"
chown postfix "$tmp/pf/data"
cat > "$tmp/pf/etc/main.cf" <<EOF
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
virtual_mailbox_limit = 0
virtual_mailbox_domains = bench.test
virtual_mailbox_base = $tmp/mail
virtual_mailbox_maps = inline:{ bob@bench.test=bob/ }
virtual_uid_maps = static:$mail_uid
virtual_gid_maps = static:$mail_gid
maillog_file = $tmp/pf/maillog
maillog_file_prefixes = $tmp/pf
EOF
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

args=(
  -ours-name asmtp -ours-smtp "$(get "$alice" smtp)" -ours-smtp-user "$(get "$alice" username)"
  -ours-smtp-pass "$(get "$alice" password)" -ours-from "$(get "$alice" address)" -ours-to "$(get "$bob" address)"
  -ours-imap "$(get "$bob" imap)" -ours-imap-user "$(get "$bob" username)" -ours-imap-pass "$(get "$bob" password)"
  -ref-name postfix+dovecot -ref-smtp "127.0.0.1:$pf_port" -ref-from alice@bench.localhost -ref-to bob@bench.test
  -ref-imap "127.0.0.1:$dc_port" -ref-imap-user bob -ref-imap-pass bench -ref-maildir-new "$tmp/mail/bob/new"
  -sizes "$SIZES"
)
echo "waiting for a probe mail alice → bob on both systems (the overlay needs a few seconds) ..." >&2
"$tmp/e2e" "${args[@]}" -probe-only >&2
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1); $(postconf -h mail_version 2>/dev/null | sed 's/^/Postfix /'), Dovecot $(dovecot --version | cut -d' ' -f1)"
"$tmp/e2e" "${args[@]}" -warmup 1
