#!/usr/bin/env bash
# Benchmark (not a test): the suite against the seed's plain shell script
# (../shared/bench/seed-checks.sh): medians of N alternating runs (seed,
# sections 1-6, every non-Docker row, then again), wall time and CPU time
# (user + sys of the process and its children), with the load average around
# the runs: on a shared machine the wall times move with the load, the CPU
# times much less.
# Usage: ci/bench.sh [N] [isocheck run filters...]   e.g. ci/bench.sh 7 --filter pid.
# (filters add one more configuration). Needs root. Builds in release mode first.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-7}; shift || true
cargo build --release --quiet
bin=target/release/isocheck
seed=../shared/bench/seed-checks.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# The scheduling hint (the last run's durations) from the bench's own runs,
# not from whatever else ran on this machine.
export XDG_CACHE_HOME=$tmp/cache

# Sections 1-6 of the catalogue: pid, net, mnt, the other namespaces, cgroups, seccomp.
s16=(--filter pid. --filter net. --filter mnt. --filter uts. --filter ipc. --filter user.
     --filter cgroupns. --filter time. --filter ns. --filter cg. --filter sc.)
names=("seed-checks.sh (plain shell)" "isocheck run: sections 1-6" "isocheck run: every non-Docker row")
cmds=("bash $seed" "$bin run ${s16[*]} --json $tmp/r1.json"
      "$bin run --skip docker. --skip esc.docker --json $tmp/r2.json")
if [ $# -gt 0 ]; then names+=("isocheck run $*"); cmds+=("$bin run $* --json $tmp/r3.json"); fi
[ -f "$seed" ] || { echo "bench: $seed not found" >&2; exit 2; }

load() { cut -d' ' -f1-3 /proc/loadavg; }
load_before=$(load)
for _ in $(seq "$n"); do # alternating: each configuration sees the same load drift
  for k in "${!cmds[@]}"; do
    # shellcheck disable=SC2086 # the commands are word lists on purpose
    /usr/bin/time -f "%e %U %S" -o "$tmp/t" ${cmds[$k]} >"$tmp/out" 2>&1 || echo "bench: run failed: ${cmds[$k]}" >&2
    read -r e u s <"$tmp/t"; echo "$e $(echo "$u + $s" | bc)" >>"$tmp/times.$k"
  done
done
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
passed() { python3 -c 'import collections,json,sys; c=collections.Counter(x["status"] for x in json.load(open(sys.argv[1]))["experiments"]); print(", ".join(f"{v} {k}" for k, v in sorted(c.items())))' "$1"; }

echo "medians of $n alternating runs; load average before: $load_before, after: $(load)"
printf '%-40s %8s %8s  %s\n' "run" "wall s" "CPU s" "experiments"
seed_wall=""
for k in "${!cmds[@]}"; do
  w=$(cut -d' ' -f1 "$tmp/times.$k" | median); c=$(cut -d' ' -f2 "$tmp/times.$k" | median)
  [ -z "$seed_wall" ] && seed_wall=$w && seed_cpu=$c
  what=$([ "$k" -gt 0 ] && passed "$tmp/r$k.json" || echo "36 checks")
  printf '%-40s %8.2f %8.2f  %s  (%.2fx the seed'"'"'s wall, %.1fx its CPU)\n' "${names[$k]}" "$w" "$c" "$what" \
    "$(echo "$w / $seed_wall" | bc -l)" "$(echo "$c / $seed_cpu" | bc -l)"
done
