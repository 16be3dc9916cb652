#!/usr/bin/env bash
# bench-cluster.sh — three olric-raft members (replicas=2, synchronous
# replication, leases) on this machine, measured over the Redis protocol
# with redis-benchmark against one member (the other two thirds of the keys
# are forwarded to their primaries; every write waits for its backup).
#
# Usage:   make bench-cluster              (or: scripts/bench-cluster.sh)
#          N=300000 RUNS=4 P=16 scripts/bench-cluster.sh
#
# Each run starts three fresh members (--timing dev, ports 7110-7382 on
# 127.0.0.1), waits until every member is ready and no backup is syncing,
# preloads the 100k keys, then runs
#   redis-benchmark -p 7120 -t set,get -n $N -c 50 -d 100 -r 100000 -P $P --csv
# and stops the members (PROFILE=DIR: each member writes a CPU profile,
# DIR/mN.cpu.pprof). Nothing is pinned: the three members and the
# client share the machine's cores. Prints one line per run and per test
# (rps, p50, p99 in ms). Needs redis-tools (installed with apt-get if
# missing) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-300000}
P=${P:-16}
RUNS=${RUNS:-2}
GO=${GO:-go}

if ! command -v redis-benchmark >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get install -y -q redis-tools || { $SUDO apt-get update -q && $SUDO apt-get install -y -q redis-tools; }
fi
command -v curl >/dev/null 2>&1 || { echo "curl is required" >&2; exit 1; }

mkdir -p bin
$GO build -o bin/olric-raft ./cmd/olric-raft
BIN=$PWD/bin/olric-raft

WORK=$(mktemp -d -t bench-cluster.XXXXXX)
PIDS=()
stop_members() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	PIDS=()
}
cleanup() {
	local rc=$?
	stop_members
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_members() {
	rm -rf "$WORK"/m*
	for i in 1 2 3; do
		local join=""
		for k in 1 2 3; do [ "$k" != "$i" ] && join="$join,127.0.0.1:7${k}22"; done
		OLRIC_RAFT_CPUPROFILE=${PROFILE:+$PROFILE/m$i.cpu.pprof} \
			"$BIN" server --node-id "m$i" --data-dir "$WORK/m$i" --bootstrap-expect 3 --timing dev --log-level warn \
			--http-addr "127.0.0.1:7${i}80" --resp-addr "127.0.0.1:7${i}20" \
			--cluster-addr "127.0.0.1:7${i}21" --gossip-addr "127.0.0.1:7${i}22" --join "${join#,}" \
			>"$WORK/m$i.log" 2>&1 &
		PIDS+=($!)
	done
	for _ in $(seq 300); do
		if curl -sf 127.0.0.1:7180/readyz >/dev/null && curl -sf 127.0.0.1:7280/readyz >/dev/null && curl -sf 127.0.0.1:7380/readyz >/dev/null; then
			break
		fi
		sleep 0.1
	done
	for _ in $(seq 300); do
		local syncing
		syncing=$("$BIN" status --address 127.0.0.1:7180 -o json 2>/dev/null | grep -o '"syncing_backups": [0-9]*' | grep -o '[0-9]*$' || true)
		[ "$syncing" = "0" ] && return 0
		sleep 0.1
	done
	echo "the members did not settle; logs in $WORK" >&2
	return 1
}

echo "run test rps p50_ms p99_ms"
for run in $(seq "$RUNS"); do
	start_members
	# Preload (first writes of each partition are paid before measuring).
	redis-benchmark -p 7120 -t set -n 200000 -c 50 -d 100 -r 100000 -P 16 -q >/dev/null
	redis-benchmark -p 7120 -t set,get -n "$N" -c 50 -d 100 -r 100000 -P "$P" --csv 2>/dev/null |
		tail -n +2 | tr -d '"' | awk -F, -v run="$run" '{ printf "%s %s %s %s %s\n", run, $1, $2, $5, $7 }'
	stop_members
done
