#!/usr/bin/env bash
# A bounded Jepsen-style pass for CI: every nemesis once, with every
# workload, a short time limit each. Fails on any anomaly (exit 1) or
# harness error (exit 2). A pass whose checks could not all decide (exit 3,
# e.g. partitions left unavailable by a split whose Raft quorum side held
# no replica of them) is reported but does not fail the pass: it found no
# anomaly. Without root the harness skips (exit 0).
set -uo pipefail
cd "$(dirname "$0")/.."
TIME_LIMIT=${JEPSEN_TIME_LIMIT:-20s}
OUT=${JEPSEN_OUT:-/tmp/olric-raft-jepsen-ci}
go build -o bin/jepsen ./integration/jepsen/cmd/jepsen || exit 2
# Every nemesis that injects faults, as the harness lists them (so a new
# nemesis is included without editing this script).
NEMESES=${JEPSEN_NEMESES:-$(bin/jepsen --list-nemeses | tr '\n' ' ')}
[ -n "$NEMESES" ] || exit 2
seed=1
failed=0
undecided=0
for n in $NEMESES; do
	echo "== jepsen: nemesis $n, all workloads, $TIME_LIMIT, seed $seed"
	bin/jepsen --time-limit "$TIME_LIMIT" --nemesis "$n" --workload all --seed "$seed" --out "$OUT"
	rc=$?
	case $rc in
	0) ;;
	3) undecided=$((undecided + 1)); echo "== jepsen: $n: no anomaly, but not every check could decide" ;;
	*) failed=$((failed + 1)); echo "== jepsen: $n FAILED (exit $rc); run folder under $OUT" ;;
	esac
	seed=$((seed + 1))
done
echo "== jepsen: $(echo $NEMESES | wc -w) nemeses, $failed failed, $undecided undecided"
[ "$failed" -eq 0 ]
