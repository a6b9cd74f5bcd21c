#!/usr/bin/env bash
# Naming v2 beside naming v1 in the same run: two three-node loopback
# networks (contrib/local-network.sh: alice on A, relay B, bob on C), one
# with the default naming v2 (inbox topics, contact cards) and one with
# network.naming_v1 on every node (pair and passport topics, as before),
# measured by contrib/bench/e2e interleaved size by size: v2 is "ours", v1
# the reference, and the ratio column is v2/v1.
#
#   contrib/bench/e2e/naming.sh                  # 100 × 10 KiB and 30 × 1 MiB
#   SIZES=10240:200 contrib/bench/e2e/naming.sh
#
# Needs no root and no other mail system. KEEP=1 keeps the temporary
# directory (logs). Exits non-zero on failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
SIZES=${SIZES:-10240:100,1048576:30}
tmp=$(mktemp -d -t asmtp-naming.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building ..." >&2
(cd "$root" && go build -o "$tmp/e2e" ./contrib/bench/e2e)

# start NAME BASE NAMING_V1: a network in $tmp/NAME on ports BASE+1…BASE+33.
start() {
  mkdir -p "$tmp/$1"
  ASMTP_NAMING_V1=$3 setsid "$root/contrib/local-network.sh" --base-port "$2" "$tmp/$1" > "$tmp/$1/out.txt" 2>&1 &
  pids+=($!)
}
base=$((20000 + RANDOM % 20000))
start v2 "$base" 0
start v1 $((base + 100)) 1

get() { sed -n "s/^$2: //p" "$1" | head -n1; }
# wait_port HOST:PORT: until something listens there (60 s).
wait_port() {
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "naming.sh: nothing listening on $1 after 60 s" >&2; return 1
}
for net in v2 v1; do
  for _ in $(seq 1200); do
    grep -qs '^password:' "$tmp/$net/c/settings.txt" && grep -qs '^password:' "$tmp/$net/a/settings.txt" && break
    sleep 0.1
  done
  grep -qs '^password:' "$tmp/$net/c/settings.txt" || { cat "$tmp/$net/out.txt" >&2; exit 1; }
  wait_port "$(get "$tmp/$net/a/settings.txt" smtp)"
  wait_port "$(get "$tmp/$net/c/settings.txt" imap)"
done

# endpoints PREFIX NET: the e2e flags naming alice → bob on network NET.
endpoints() {
  local a=$tmp/$2/a/settings.txt b=$tmp/$2/c/settings.txt
  printf '%s\n' "-$1name" "asmtp-$2" "-$1smtp" "$(get "$a" smtp)" "-$1smtp-user" "$(get "$a" username)" \
    "-$1smtp-pass" "$(get "$a" password)" "-$1from" "$(get "$a" address)" "-$1to" "$(get "$b" address)" \
    "-$1imap" "$(get "$b" imap)" "-$1imap-user" "$(get "$b" username)" "-$1imap-pass" "$(get "$b" password)"
}
mapfile -t args < <(endpoints ours- v2; endpoints ref- v1)
args+=(-sizes "$SIZES")
echo "waiting for a probe mail alice → bob on both networks ..." >&2
"$tmp/e2e" "${args[@]}" -probe-only >&2
echo "# $(uname -m), $(nproc) CPUs, $(go version | cut -d' ' -f3); ours = naming v2, reference = naming v1"
"$tmp/e2e" "${args[@]}" -warmup 3
