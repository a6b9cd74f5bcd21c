#!/usr/bin/env bash
# Starts a three-node ASMTP network on loopback, so a newcomer can send a
# first mail in a minute: alice's node A, a relay B, and bob's node C
# (A and C know only B). alice and bob already have each other as contacts.
#
#   contrib/local-network.sh [--base-port N] [DIR]   # default DIR: a new temporary directory
#
# Ports are N+1, N+2, N+3 for the nodes A, B, C (ASMTP), and for the two
# nodes with an account: IMAP N+11, SMTP N+12, CardDAV N+13 on A, and
# N+31, N+32, N+33 on C. B only relays: its bridge is off and it listens
# on its ASMTP port alone. N defaults to $ASMTP_BASE_PORT, else to what a
# previous run in DIR used, else 19800. It prints each account's settings
# and runs until Ctrl-C. ASMTP_NAMING_V1=1 runs the three nodes as
# naming-v1 nodes (network.naming_v1: pair and passport topics, as before
# naming v2), to compare the two (contrib/bench/e2e/naming.sh).
# ASMTP_LOG_LEVEL=debug makes the nodes log at that level.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
base=${ASMTP_BASE_PORT:-}
if [ "${1:-}" = "--base-port" ]; then
  base=${2:?--base-port needs a number}; shift 2
fi
dir=${1:-$(mktemp -d -t asmtp-local.XXXXXX)}
mkdir -p "$dir/bin"
if [ -z "$base" ]; then
  base=$(cat "$dir/base-port" 2>/dev/null || echo 19800)
fi
case $base in
  ''|*[!0-9]*) echo "base port $base: want a number" >&2; exit 2 ;;
esac
if [ "$base" -lt 1024 ] || [ "$base" -gt 65500 ]; then
  echo "base port $base: want 1024 to 65500 (the network uses N+1 to N+33)" >&2; exit 2
fi
echo "$base" > "$dir/base-port"
export ASMTPD_KEY_PASSWORD=${ASMTPD_KEY_PASSWORD:-local-network}
naming_v1=false
[ "${ASMTP_NAMING_V1:-}" = 1 ] && naming_v1=true

echo "building into $dir/bin ..." >&2
(cd "$root" && go build -o "$dir/bin/" ./cmd/asmtpd ./cmd/asmtpd-cli)
cli="$dir/bin/asmtpd-cli"

# node NAME OFFSET PEER...: the node's config, with the ASMTP port
# base+OFFSET; a node with a bridge (OFFSET 1 or 3) gets IMAP, SMTP and
# CardDAV at base+OFFSET*10+1, +2, +3.
node() {
  local name=$1 off=$2; shift 2
  local d="$dir/$name" peers="" port=$((base + off))
  mkdir -p "$d"
  if [ ! -f "$d/entropy.txt" ]; then
    "$cli" generate-new-key --entropy-output "$d/entropy.txt" | sed 's/^Public Identity: //' > "$d/id"
  fi
  for p in "$@"; do peers="$peers\"$(cat "$dir/$p/id")@127.0.0.1:$(cat "$dir/$p/port")\", "; done
  echo "$port" > "$d/port"
  local bridge=(-e "s|enabled: true|enabled: false|")
  if [ "$off" != 2 ]; then
    local m=$((base + off * 10))
    bridge=(
      -e "s|imap_listen_address: \"127.0.0.1:1143\"|imap_listen_address: \"127.0.0.1:$((m + 1))\"|"
      -e "s|smtp_listen_address: \"127.0.0.1:1587\"|smtp_listen_address: \"127.0.0.1:$((m + 2))\"|"
      -e "s|carddav_listen_address: \"127.0.0.1:1808\"|carddav_listen_address: \"127.0.0.1:$((m + 3))\"|"
    )
  fi
  "$cli" default-config | sed \
    -e "s|listen_address: \"127.0.0.1:9800\"|listen_address: \"127.0.0.1:$port\"|" \
    -e "s|known_peers: \[\]|known_peers: [${peers%, }]|" \
    "${bridge[@]}" \
    -e "s|gossip_refresh_rate: \"30s\"|gossip_refresh_rate: \"2s\"|" \
    -e "s|minimum_time_elapsed: \"10s\"|minimum_time_elapsed: \"1s\"|" \
    -e "s|naming_v1: false|naming_v1: ${naming_v1}|" \
    > "$d/config.yaml"
}

fresh=false
[ -f "$dir/b/config.yaml" ] || fresh=true
node b 2
node a 1 b
node c 3 b

if $fresh; then
  "$cli" account add --config "$dir/a/config.yaml" --name alice > "$dir/a/alice.txt" 2>/dev/null
  "$cli" account add --config "$dir/c/config.yaml" --name bob > "$dir/c/bob.txt" 2>/dev/null
  "$cli" account export-passport --config "$dir/a/config.yaml" --name alice --output "$dir/alice.passport"
  "$cli" account export-passport --config "$dir/c/config.yaml" --name bob --output "$dir/bob.passport"
  "$cli" contact add --config "$dir/a/config.yaml" --account alice --name bob --passport "$dir/bob.passport" >/dev/null
  "$cli" contact add --config "$dir/c/config.yaml" --account bob --name alice --passport "$dir/alice.passport" >/dev/null
fi

# settings NODE FILE: the account's settings as account add printed them,
# with the ports of this run (the base port may have changed since).
settings() {
  local m=$((base + $1 * 10))
  sed -e "s|^imap: .*|imap: 127.0.0.1:$((m + 1))|" -e "s|^smtp: .*|smtp: 127.0.0.1:$((m + 2))|" \
      -e "s|^carddav: .*|carddav: http://127.0.0.1:$((m + 3))/|" "$2"
}
settings 1 "$dir/a/alice.txt" > "$dir/a/settings.txt"
settings 3 "$dir/c/bob.txt" > "$dir/c/settings.txt"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait; echo "stopped; state kept in $dir" >&2' EXIT
trap 'exit 130' INT TERM # through the EXIT trap, which stops the nodes
for n in b a c; do
  "$dir/bin/asmtpd" --log-level "${ASMTP_LOG_LEVEL:-info}" --config "$dir/$n/config.yaml" 2> "$dir/$n/asmtpd.log" &
  pids+=($!)
done

echo
echo "alice (node A, 127.0.0.1:$((base + 1))):"; sed 's/^/  /' "$dir/a/settings.txt"
echo "bob (node C, 127.0.0.1:$((base + 3))):";   sed 's/^/  /' "$dir/c/settings.txt"
echo "relay B: 127.0.0.1:$((base + 2)) (no accounts, no mail ports)"
cat <<TXT

Send mail from alice to bob's address with any mail client (settings above), e.g.:
  swaks --server $(sed -n 's/^smtp: //p' "$dir/a/settings.txt") --auth-user alice \\
        --auth-password $(sed -n 's/^password: //p' "$dir/a/settings.txt") \\
        --from $(sed -n 's/^address: //p' "$dir/a/settings.txt") --to $(sed -n 's/^address: //p' "$dir/c/settings.txt")
and read it as bob over IMAP. Thunderbird can set alice up by itself: see
contrib/clients/thunderbird.md, with mailnews.auto_config_url set to
$(sed -n 's/^carddav: //p' "$dir/a/settings.txt")autoconfig/
Logs: $dir/{a,b,c}/asmtpd.log. Ctrl-C stops the network.
TXT
wait
