#!/bin/sh
# Runs the same IMAP workload against the bridge's IMAP server and a local
# Dovecot (Debian's dovecot-imapd) and prints bridge/Dovecot ratios.
# Options: -messages N (10000) -runs N (9) -logins N (300).
set -eu
cd "$(dirname "$0")/../../.."
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || {
	echo "bench.sh: dovecot not found; install it with: apt-get install -y dovecot-imapd" >&2
	exit 1
}
exec go run ./contrib/bench/imap "$@"
