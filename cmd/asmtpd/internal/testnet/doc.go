// Package testnet runs a network of real asmtpd processes for tests and
// benchmarks, and injects faults into it.
//
// Each node runs in a Linux network namespace of its own, with one
// address on a veth pair whose other end sits on a Linux bridge device in
// a hub namespace the harness creates. Nothing of the network is shared
// with the machine, so a node listens on the well-known ports (9800, and
// the bridge's 1143 and 1587 on the namespace's own loopback) and several
// runs never collide. Mail clients (Python's smtplib and imaplib) are run
// inside a node's namespace with `ip netns exec`.
//
// The fault injector kills nodes with SIGKILL and restarts them, stops
// them with SIGSTOP (a hung peer: links stay open, nothing answers) and
// continues them, and partitions the network: the hub-side ends of one
// group's veths move to a second bridge device, so the groups keep their
// own links but cannot reach each other, until Heal moves them back.
//
// Where namespaces cannot be created (no CAP_SYS_ADMIN, no ip), the nodes
// fall back to loopback addresses with free ports, and the harness says so
// through its log function; partitions are then not possible and
// Partition returns ErrNoPartition.
//
// Namespaces are named asmtptn-<pid>-*, after the process that made them;
// New removes those of processes that no longer run (a crashed run), with
// any process left inside them.
package testnet
