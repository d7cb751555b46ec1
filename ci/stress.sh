#!/usr/bin/env bash
# Stress benchmark of the suite's robustness (not part of .ci/run: it takes
# minutes and wants a quiet machine). Usage:
#   ci/stress.sh [N full runs] [M SIGKILLs] [S SIGINTs] [K concurrent]   (default 5 5 3 3)
# - N full runs in a row: a flake is any row that is not passed or ignored.
# - M runs SIGKILLed at a random moment (1-10 s); each is followed by one
#   short run (whose start sweeps dead runs) and a check that nothing of the
#   killed run is left: netns, scratch dirs, cgroups, mounts, processes,
#   containers, images.
# - S runs SIGINTed at a random moment: exit 130, a report marked
#   interrupted without broken rows, and nothing of the run left.
# - K full runs at the same time: each must pass every row.
# Prints one summary line per part. Needs root and a Docker engine (as
# ci/isocheck sets up); builds target/debug/isocheck first.
set -uo pipefail
cd "$(dirname "$0")/.."
N=${1:-5} M=${2:-5} S=${3:-3} K=${4:-3}
cargo build --quiet || exit 2
bin=$PWD/target/debug/isocheck
work=$(mktemp -d /tmp/isocheck-stress.XXXXXX)
# Kept when something went wrong: the reports and outputs are the evidence.
keep=0
trap '[ "$keep" = 1 ] && echo "stress: outputs kept in $work" || rm -rf "$work"' EXIT
DOCKER=docker; [ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker

run_id() { sed -n 's/.*(run \([0-9a-f]*\)).*/\1/p' "$1" | head -n1; }

# Everything of run $1 still on the host, one line each.
leftovers() {
  local id=$1 p
  ls /run/netns 2>/dev/null | grep "^isoc-$id-"
  ls "${TMPDIR:-/tmp}/isocheck" 2>/dev/null | grep "^isoc-$id-"
  ls -d /sys/fs/cgroup/*/isocheck/isoc-"$id"-* /sys/fs/cgroup/isocheck/isoc-"$id"-* 2>/dev/null
  awk '{print $5}' /proc/self/mountinfo | grep "/isoc-$id-"
  for p in /proc/[0-9]*; do
    grep -qasF "ISOCHECK_TAG=isoc-$id-" "$p/environ" 2>/dev/null && echo "process ${p#/proc/}"
  done
  timeout 20 "$DOCKER" ps -a --format '{{.Label "isocheck.tag"}}' 2>/dev/null | grep "^isoc-$id-"
  timeout 20 "$DOCKER" images -q --filter "label=isocheck.run=$id" 2>/dev/null
}

# Rows of report $1 that are neither passed nor ignored, as id:status.
bad_rows() {
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(" ".join(e["id"] + ":" + e["status"] + "(" + (e.get("reason") or "")[:120].replace(" ", "_") + ")"
               for e in r["experiments"] if e["status"] not in ("passed", "ignored")))
' "$1" 2>/dev/null || echo "no-report"
}

flakes=0 flaky_runs=0 flake_list=""
for i in $(seq 1 "$N"); do
  "$bin" run --json "$work/full$i.json" >"$work/full$i.out" 2>&1
  rc=$? bad=$(bad_rows "$work/full$i.json")
  if [ "$rc" != 0 ] || [ -n "$bad" ]; then
    flaky_runs=$((flaky_runs + 1)); flakes=$((flakes + $(wc -w <<<"$bad")))
    flake_list+=" run$i(rc=$rc):$bad"; keep=1
  fi
done
echo "full runs: $N in a row, $flaky_runs with a flake, $flakes flaky rows${flake_list:+:$flake_list}"

left_total=0 left_list=""
for i in $(seq 1 "$M"); do
  "$bin" run >/dev/null 2>"$work/kill$i.err" &
  pid=$!
  sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.1f", 1 + rand() * 9 }')"
  kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  id=$(run_id "$work/kill$i.err")
  "$bin" run --filter pid.init-is-pid-1 >/dev/null 2>&1
  n=$(leftovers "$id" | wc -l)
  left_total=$((left_total + n)); [ "$n" -gt 0 ] && left_list+=" run $id: $(leftovers "$id" | tr '\n' ' ')" && keep=1
done
echo "SIGKILLs: $M at random moments, $left_total leftovers after the next run${left_list:+:$left_list}"

ok130=0 finished=0 other_rc="" fake_broken=0 int_left=0
for i in $(seq 1 "$S"); do
  "$bin" run --json "$work/int$i.json" >/dev/null 2>"$work/int$i.err" &
  pid=$!
  sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.1f", 1 + rand() * 9 }')"
  kill -INT "$pid" 2>/dev/null; wait "$pid"; rc=$?
  if [ "$rc" = 130 ]; then
    ok130=$((ok130 + 1))
  elif [ "$rc" = 0 ] && grep -q '"experiments"' "$work/int$i.json" 2>/dev/null \
    && ! grep -q '"interrupted": true' "$work/int$i.json"; then
    finished=$((finished + 1)) # done before the signal came: a true exit 0
  else
    other_rc+=" $rc"; keep=1
  fi
  if [ -s "$work/int$i.json" ]; then
    fake_broken=$((fake_broken + $(bad_rows "$work/int$i.json" | wc -w)))
  fi
  int_left=$((int_left + $(leftovers "$(run_id "$work/int$i.err")" | wc -l)))
done
echo "SIGINTs: $S at random moments, $ok130 exited 130, $finished had finished before the signal${other_rc:+, other exit codes:$other_rc}, $fake_broken broken/failed rows in their reports, $int_left leftovers"

pids=()
for i in $(seq 1 "$K"); do
  "$bin" run --json "$work/conc$i.json" >"$work/conc$i.out" 2>&1 &
  pids+=($!)
done
allok=0 conc_list=""
for i in $(seq 1 "$K"); do
  wait "${pids[$((i - 1))]}"; rc=$?
  bad=$(bad_rows "$work/conc$i.json")
  if [ "$rc" = 0 ] && [ -z "$bad" ]; then allok=$((allok + 1)); else conc_list+=" run$i(rc=$rc):$bad"; keep=1; fi
done
echo "concurrent: $K at once, $allok passed every row${conc_list:+, failures:$conc_list}"
