#!/usr/bin/env bash
# The nothing-lost test network: real asmtpd processes, each in a Linux
# network namespace of its own (veth pairs on a bridge device in a hub
# namespace), bridge accounts driven with Python's smtplib and imaplib, and
# a fault injector that kills and restarts nodes (SIGKILL), hangs them
# (SIGSTOP/SIGCONT) and partitions the network, then heals it. The harness
# is the Go package cmd/asmtpd/internal/testnet; the scenario is
# TestNetworkChurn in cmd/asmtpd/testnet_test.go.
#
#   contrib/testnet/testnet.sh ci      # 8 nodes, 16 accounts, 200 mails (as in CI)
#   contrib/testnet/testnet.sh bench   # 30 nodes, 60 accounts, 2,000 mails, 10 min of churn
#   contrib/testnet/testnet.sh clean   # remove namespaces left by crashed runs
#
# It prints delivered/lost/duplicated, the latency from SMTP 250 to the
# recipient's INBOX (p50/p99) and each node's traffic, disk and memory
# (the RESULT lines). KEEP=DIR keeps the nodes' directories (logs) in DIR.
# Needs root for the namespaces; without them the nodes run on loopback
# addresses (and the run says so), with no partitions.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-ci}

run() { # extra environment...
  cd "$root"
  env "$@" ${KEEP:+ASMTP_TESTNET_KEEP=$KEEP} \
    go test ./cmd/asmtpd/ -run '^TestNetworkChurn$' -count=1 -v -timeout 60m |
    grep -v '^        time=' # the nodes' log lines, printed on failure, are in KEEP
}

case $mode in
ci) run ;;
bench) run ASMTP_TESTNET_BENCH=1 ;;
clean)
  for ns in $(ip netns list | awk '/^asmtptn-/ {print $1}'); do
    pid=${ns#asmtptn-}; pid=${pid%%-*}
    kill -0 "$pid" 2>/dev/null && continue # its run is still going
    for p in $(ip netns pids "$ns"); do kill -KILL "$p"; done
    ip netns del "$ns" && echo "removed $ns"
  done ;;
*) echo "usage: $0 ci|bench|clean" >&2; exit 2 ;;
esac
