#!/usr/bin/env bash
# Starts a three-node ASMTP network on loopback, so a newcomer can send a
# first mail in a minute: alice's node A, a relay B, and bob's node C
# (A and C know only B). alice and bob already have each other as contacts.
#
#   contrib/local-network.sh [DIR]      # default DIR: a new temporary directory
#
# It prints each account's IMAP/SMTP settings and runs until Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$(mktemp -d -t asmtp-local.XXXXXX)}
mkdir -p "$dir/bin"
export ASMTPD_KEY_PASSWORD=${ASMTPD_KEY_PASSWORD:-local-network}

echo "building into $dir/bin ..." >&2
(cd "$root" && go build -o "$dir/bin/" ./cmd/asmtpd ./cmd/asmtpd-cli)
cli="$dir/bin/asmtpd-cli"

# node NAME PORT IMAP SMTP BRIDGE(true|false) PEER...
node() {
  local name=$1 port=$2 imap=$3 smtp=$4 bridge=$5; shift 5
  local d="$dir/$name" peers=""
  mkdir -p "$d"
  if [ ! -f "$d/entropy.txt" ]; then
    "$cli" generate-new-key --entropy-output "$d/entropy.txt" | sed 's/^Public Identity: //' > "$d/id"
  fi
  for p in "$@"; do peers="$peers\"$(cat "$dir/$p/id")@127.0.0.1:$(cat "$dir/$p/port")\", "; done
  echo "$port" > "$d/port"
  "$cli" default-config | sed \
    -e "s|listen_address: \"127.0.0.1:9800\"|listen_address: \"127.0.0.1:$port\"|" \
    -e "s|known_peers: \[\]|known_peers: [${peers%, }]|" \
    -e "s|enabled: true|enabled: $bridge|" \
    -e "s|imap_listen_address: \"127.0.0.1:1143\"|imap_listen_address: \"127.0.0.1:$imap\"|" \
    -e "s|smtp_listen_address: \"127.0.0.1:1587\"|smtp_listen_address: \"127.0.0.1:$smtp\"|" \
    -e "s|gossip_refresh_rate: \"30s\"|gossip_refresh_rate: \"2s\"|" \
    -e "s|minimum_time_elapsed: \"10s\"|minimum_time_elapsed: \"1s\"|" \
    > "$d/config.yaml"
}

fresh=false
[ -f "$dir/b/config.yaml" ] || fresh=true
node b 19802 19143 19587 false
node a 19801 11143 11587 true b
node c 19803 13143 13587 true b

if $fresh; then
  "$cli" account add --config "$dir/a/config.yaml" --name alice > "$dir/a/alice.txt" 2>/dev/null
  "$cli" account add --config "$dir/c/config.yaml" --name bob > "$dir/c/bob.txt" 2>/dev/null
  "$cli" account export-passport --config "$dir/a/config.yaml" --name alice --output "$dir/alice.passport"
  "$cli" account export-passport --config "$dir/c/config.yaml" --name bob --output "$dir/bob.passport"
  "$cli" contact add --config "$dir/a/config.yaml" --account alice --name bob --passport "$dir/bob.passport" >/dev/null
  "$cli" contact add --config "$dir/c/config.yaml" --account bob --name alice --passport "$dir/alice.passport" >/dev/null
fi

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait; echo "stopped; state kept in $dir" >&2' EXIT
for n in b a c; do
  "$dir/bin/asmtpd" --config "$dir/$n/config.yaml" 2> "$dir/$n/asmtpd.log" &
  pids+=($!)
done

echo
echo "alice (node A):"; sed 's/^/  /' "$dir/a/alice.txt"
echo "bob (node C):";   sed 's/^/  /' "$dir/c/bob.txt"
cat <<TXT

Send mail from alice to bob's address with any mail client (settings above), e.g.:
  swaks --server $(sed -n 's/^smtp: //p' "$dir/a/alice.txt") --auth-user alice \\
        --auth-password $(sed -n 's/^password: //p' "$dir/a/alice.txt") \\
        --from $(sed -n 's/^address: //p' "$dir/a/alice.txt") --to $(sed -n 's/^address: //p' "$dir/c/bob.txt")
and read it as bob over IMAP. Logs: $dir/{a,b,c}/asmtpd.log. Ctrl-C stops the network.
TXT
wait
