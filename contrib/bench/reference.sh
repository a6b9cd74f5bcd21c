# Sourced by contrib/bench/e2e/bench.sh and contrib/bench/load/bench.sh:
# the set-up both benchmarks share. ASMTP's three-node loopback network
# (contrib/local-network.sh: alice on A, relay B, bob on C) and, as the
# reference on the same machine, a throwaway Dovecot serving bob's Maildir
# over IMAP and a throwaway Postfix delivering into it, either itself
# (virtual(8), for the latency benchmark, which also watches new/) or over
# LMTP to Dovecot (the load benchmark). Everything listens on 127.0.0.1
# only, with its own configuration under a temporary directory that the
# EXIT trap removes (KEEP=1 keeps it, for the logs) after stopping
# everything it started.
#
#   bench_init NAME [lmtp]   root and packages checked, $tmp made, trap set
#   start_asmtp_network      sets $alice and $bob (account files; see get)
#   start_dovecot [lmtp]     sets $dc_imap (and $dc_lmtp)
#   start_postfix maildir|lmtp  sets $pf_port
#   machine_line             one line describing the machine and versions
#
# Needs root and Debian's postfix and dovecot-imapd (and dovecot-lmtpd for
# lmtp).

bench_init() { # name [lmtp]
  [ "$(id -u)" = 0 ] || { echo "bench.sh: run as root (throwaway Postfix/Dovecot)" >&2; exit 1; }
  export PATH=$PATH:/usr/sbin:/sbin
  local pkgs="postfix dovecot-imapd${2:+ dovecot-lmtpd}"
  for b in postfix postconf dovecot; do
    command -v "$b" >/dev/null || { echo "bench.sh: $b missing (apt-get install $pkgs)" >&2; exit 1; }
  done
  if [ "${2:-}" = lmtp ]; then
    [ -x /usr/lib/dovecot/lmtp ] || { echo "bench.sh: Dovecot's LMTP server missing (apt-get install dovecot-lmtpd)" >&2; exit 1; }
  fi
  tmp=$(mktemp -d -t "asmtp-$1.XXXXXX")
  chmod 755 "$tmp"
  net_pid="" dc_pid="" pf_started=false
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # host port seconds
  for _ in $(seq $(($3 * 10))); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench.sh: nothing listening on $1:$2 after $3 s" >&2; return 1
}

# get prints field $2 of the account file $1 (smtp, imap, username, ...).
get() { sed -n "s/^$2: //p" "$1" | head -n1; }

start_asmtp_network() {
  mkdir -p "$tmp/net"
  setsid "$root/contrib/local-network.sh" "$tmp/net" > "$tmp/net/out.txt" 2>&1 &
  net_pid=$!
  for _ in $(seq 1200); do
    grep -qs '^password:' "$tmp/net/c/bob.txt" && grep -qs '^password:' "$tmp/net/a/alice.txt" && break
    kill -0 "$net_pid" 2>/dev/null || { cat "$tmp/net/out.txt" >&2; exit 1; }
    sleep 0.1
  done
  alice=$tmp/net/a/alice.txt bob=$tmp/net/c/bob.txt
  wait_port 127.0.0.1 "$(get "$alice" smtp | sed 's/.*://')" 60
  wait_port 127.0.0.1 "$(get "$bob" imap | sed 's/.*://')" 60
}

# start_dovecot serves bob's Maildir ($tmp/mail/bob) over IMAP, user bob,
# password bench; with lmtp it also takes deliveries over LMTP.
start_dovecot() { # [lmtp]
  mail_uid=$(id -u dovecot) mail_gid=$(id -g dovecot)
  mkdir -p "$tmp/mail/bob"/{cur,new,tmp} "$tmp/home/bob" "$tmp/dc/run" "$tmp/dc/state"
  chown -R dovecot:dovecot "$tmp/mail" "$tmp/home"
  chmod -R 755 "$tmp/mail" "$tmp/home"
  dc_imap=$(free_port) dc_lmtp=""
  local protocols=imap lmtp_service=""
  if [ "${1:-}" = lmtp ]; then
    dc_lmtp=$(free_port) protocols="imap lmtp"
    lmtp_service="service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $dc_lmtp
  }
  unix_listener lmtp {
    mode = 0600
  }
}"
  fi
  cat > "$tmp/dc/dovecot.conf" <<CONF
base_dir = $tmp/dc/run
state_dir = $tmp/dc/state
log_path = $tmp/dc/dovecot.log
protocols = $protocols
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
$lmtp_service
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
  if [ -n "$dc_lmtp" ]; then wait_port 127.0.0.1 "$dc_lmtp" 15; fi
}

# start_postfix accepts mail for bob@bench.test on $pf_port and delivers
# it into bob's Maildir itself (maildir) or over LMTP to Dovecot (lmtp).
start_postfix() { # maildir|lmtp
  local delivery
  case "$1" in
  maildir) delivery="virtual_mailbox_limit = 0
virtual_mailbox_base = $tmp/mail
virtual_mailbox_maps = inline:{ bob@bench.test=bob/ }
virtual_uid_maps = static:$mail_uid
virtual_gid_maps = static:$mail_gid" ;;
  lmtp) delivery="virtual_mailbox_maps = inline:{ bob@bench.test=bob }
virtual_transport = lmtp:inet:127.0.0.1:$dc_lmtp" ;;
  *) echo "start_postfix: maildir or lmtp, not $1" >&2; exit 1 ;;
  esac
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
$delivery
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
}

machine_line() {
  echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1), load average $(cut -d' ' -f1-3 /proc/loadavg); $(postconf -h mail_version 2>/dev/null | sed 's/^/Postfix /'), Dovecot $(dovecot --version | cut -d' ' -f1)"
}

# ours_args are the flags naming alice → bob on the ASMTP network, for
# contrib/bench/e2e and contrib/bench/load.
ours_args() {
  printf '%s\n' -ours-name asmtp -ours-smtp "$(get "$alice" smtp)" -ours-smtp-user "$(get "$alice" username)" \
    -ours-smtp-pass "$(get "$alice" password)" -ours-from "$(get "$alice" address)" -ours-to "$(get "$bob" address)" \
    -ours-imap "$(get "$bob" imap)" -ours-imap-user "$(get "$bob" username)" -ours-imap-pass "$(get "$bob" password)"
}
