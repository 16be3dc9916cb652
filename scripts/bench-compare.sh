#!/usr/bin/env bash
# bench-compare.sh — redis-server vs olric-raft over the Redis protocol,
# measured with the same client (redis-benchmark) and the same flags.
#
# Usage:   make bench-compare            (or: scripts/bench-compare.sh)
#          N=500000 ROUNDS=3 scripts/bench-compare.sh
#
# What it does:
#   1. installs redis-server and redis-tools with apt-get if missing
#      (non-interactive; needs root or sudo);
#   2. builds bin/olric-raft (go build, no race detector);
#   3. starts redis-server on 127.0.0.1:6390 (no persistence:
#      --save '' --appendonly no) and `olric-raft server --dev` with RESP on
#      127.0.0.1:6391 (HTTP 6392, cluster 6393, gossip 6394, --timing dev,
#      --log-level warn), both pinned to CPU 0 with `taskset -c 0`;
#   4. waits until both answer PING, then preloads the 100k keys the
#      benchmark touches (key:000000000000 .. key:000000099999, 100-byte
#      values) into both with `redis-cli --pipe`, so first writes are paid
#      before measuring and every GET hits;
#   5. runs redis-benchmark pinned to CPU 1, alternating redis, olric,
#      redis, olric (ROUNDS rounds, default 2), with
#        -t set,get -n $N -c 50 -d 100 -r 100000 --csv --precision 3
#      at pipeline 1 and at -P 16;
#   6. prints a table (median of the rounds): test, pipeline, redis rps,
#      olric rps, olric/redis ratio, redis p50/p99 ms, olric p50/p99 ms.
#      redis-benchmark 7's --csv gives rps, avg, min, p50, p95, p99, max.
# Both servers are stopped on exit (trap), whatever happens.
#
# Environment: N (requests per run, default 200000), ROUNDS (default 2),
# REDIS_PORT (6390), OLRIC_PORT (6391; OLRIC_PORT+1..+3 are also used),
# SERVER_CPU (0), CLIENT_CPU (1), KEEP_RAW=1 keeps the raw CSV directory.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200000}
ROUNDS=${ROUNDS:-2}
REDIS_PORT=${REDIS_PORT:-6390}
OLRIC_PORT=${OLRIC_PORT:-6391}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
KEYS=100000
DSIZE=100
GO=${GO:-go}

# --- 1. tools ---------------------------------------------------------------
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
{ command -v redis-cli >/dev/null 2>&1 && command -v redis-benchmark >/dev/null 2>&1; } || need+=(redis-tools)
if ((${#need[@]})); then
	echo "== installing ${need[*]}"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get install -y -q "${need[@]}" || { $SUDO apt-get update -q && $SUDO apt-get install -y -q "${need[@]}"; }
fi
command -v taskset >/dev/null 2>&1 || { echo "taskset (util-linux) is required" >&2; exit 1; }

# --- 2. build -----------------------------------------------------------------
echo "== build bin/olric-raft"
mkdir -p bin
$GO build -o bin/olric-raft ./cmd/olric-raft

# --- 3. servers -------------------------------------------------------------
WORK=$(mktemp -d -t bench-compare.XXXXXX)
PIDS=()
cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ "${KEEP_RAW:-0}" = 1 ]; then echo "raw output kept in $WORK"; else rm -rf "$WORK"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== start redis-server on 127.0.0.1:$REDIS_PORT (CPU $SERVER_CPU)"
taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
	--save '' --appendonly no --daemonize no --dir "$WORK" \
	>"$WORK/redis.log" 2>&1 &
PIDS+=($!)

echo "== start olric-raft server --dev on 127.0.0.1:$OLRIC_PORT (CPU $SERVER_CPU)"
taskset -c "$SERVER_CPU" bin/olric-raft server --dev \
	--resp-addr "127.0.0.1:$OLRIC_PORT" \
	--http-addr "127.0.0.1:$((OLRIC_PORT + 1))" \
	--cluster-addr "127.0.0.1:$((OLRIC_PORT + 2))" \
	--gossip-addr "127.0.0.1:$((OLRIC_PORT + 3))" \
	--timing dev --log-level warn \
	>"$WORK/olric.log" 2>&1 &
PIDS+=($!)

wait_ping() { # port name logfile
	for _ in $(seq 300); do
		if [ "$(redis-cli -h 127.0.0.1 -p "$1" PING 2>/dev/null)" = PONG ]; then return 0; fi
		sleep 0.1
	done
	echo "$2 did not answer PING on port $1 within 30 s; its log:" >&2
	cat "$3" >&2
	exit 1
}
wait_ping "$REDIS_PORT" redis-server "$WORK/redis.log"
wait_ping "$OLRIC_PORT" olric-raft "$WORK/olric.log"
# PING answers before partitions are assigned; a SET succeeds once the
# member owns its partitions.
for _ in $(seq 300); do
	[ "$(redis-cli -h 127.0.0.1 -p "$OLRIC_PORT" SET bench:ready 1 2>/dev/null)" = OK ] && break
	sleep 0.1
done

# --- 4. preload -------------------------------------------------------------
# redis-benchmark -r R turns __rand_int__ into a 12-digit number below R.
echo "== preload $KEYS keys into both (redis-cli --pipe)"
VALUE=$(head -c "$DSIZE" /dev/zero | tr '\0' x)
awk -v n="$KEYS" -v v="$VALUE" 'BEGIN {
	for (i = 0; i < n; i++) {
		k = sprintf("key:%012d", i)
		printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
	}
}' >"$WORK/preload.resp"
for port in "$REDIS_PORT" "$OLRIC_PORT"; do
	out=$(redis-cli -h 127.0.0.1 -p "$port" --pipe <"$WORK/preload.resp" 2>&1)
	echo "$out" | grep -q "errors: 0, replies: $KEYS" || { echo "preload on port $port failed: $out" >&2; exit 1; }
done

# --- 5. measure -------------------------------------------------------------
bench() { # port pipeline outfile
	taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$1" \
		-t set,get -n "$N" -c 50 -d "$DSIZE" -r "$KEYS" -P "$2" \
		--csv --precision 3 >"$3"
}
for P in 1 16; do
	for r in $(seq "$ROUNDS"); do
		echo "== pipeline $P round $r: redis"
		bench "$REDIS_PORT" "$P" "$WORK/redis-P$P-r$r.csv"
		echo "== pipeline $P round $r: olric"
		bench "$OLRIC_PORT" "$P" "$WORK/olric-P$P-r$r.csv"
	done
done

# --- 6. report --------------------------------------------------------------
# CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
#      "p95_latency_ms","p99_latency_ms","max_latency_ms"
# rows: server pipeline test rps p50 p99
for f in "$WORK"/*-P*-r*.csv; do
	b=$(basename "$f" .csv)
	server=${b%%-*}
	p=${b#*-P}; p=${p%%-*}
	tr -d '"' <"$f" | awk -F, -v s="$server" -v p="$p" 'NR > 1 && NF >= 8 { print s, p, $1, $2, $5, $7 }'
done >"$WORK/rows.txt"

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { # server pipeline test column
	awk -v s="$1" -v p="$2" -v t="$3" -v c="$4" '$1 == s && $2 == p && $3 == t { print $c }' "$WORK/rows.txt" | median
}

echo
echo "redis-benchmark -t set,get -n $N -c 50 -d $DSIZE -r $KEYS [-P 16] --csv; servers on CPU $SERVER_CPU, client on CPU $CLIENT_CPU; median of $ROUNDS rounds"
echo
echo "| test | pipeline | redis rps | olric rps | olric/redis | redis p50/p99 ms | olric p50/p99 ms |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for t in SET GET; do
	for P in 1 16; do
		rr=$(col redis "$P" "$t" 4); orps=$(col olric "$P" "$t" 4)
		r50=$(col redis "$P" "$t" 5); r99=$(col redis "$P" "$t" 6)
		o50=$(col olric "$P" "$t" 5); o99=$(col olric "$P" "$t" 6)
		awk -v t="$t" -v p="$P" -v rr="$rr" -v or="$orps" -v r50="$r50" -v r99="$r99" -v o50="$o50" -v o99="$o99" \
			'BEGIN { printf "| %s | %d | %.0f | %.0f | %.2f | %.3f / %.3f | %.3f / %.3f |\n", t, p, rr, or, (rr > 0 ? or / rr : 0), r50, r99, o50, o99 }'
	done
done
